package userns

import (
	"os"
	"strconv"
	"strings"
)

// Nested reports whether this process runs in a user namespace other than the initial one,
// whose uid map is every id onto itself ("0 0 4294967295"): one made by Command or Reexec
// (see Inside, which asks for that too) or by anyone else, such as a rootless engine. It is
// false where /proc cannot tell.
func Nested() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == strconv.FormatUint(1<<32-1, 10))
}

// OuterUID returns the uid outside this process's user namespace that its own uid maps to,
// or false in the initial user namespace (and where /proc cannot tell). In a user's space
// it is the user, whom the space's root stands for.
func OuterUID() (int, bool) {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return 0, false
	}
	return mappedUID(string(b), os.Getuid())
}

// mappedUID finds uid in uidMap (the lines of /proc/PID/uid_map: inside, outside, count) and
// returns what it maps to outside; false for the initial namespace's identity map.
func mappedUID(uidMap string, uid int) (int, bool) {
	for _, line := range strings.Split(strings.TrimSpace(uidMap), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		in, err1 := strconv.ParseUint(f[0], 10, 32)
		out, err2 := strconv.ParseUint(f[1], 10, 32)
		n, err3 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if in == 0 && out == 0 && n == 1<<32-1 {
			return 0, false
		}
		if u := uint64(uid); u >= in && u-in < n {
			return int(out + u - in), true
		}
	}
	return 0, false
}
