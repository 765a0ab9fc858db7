package userns

import (
	"slices"
	"strings"
)

// rootDirs are the directories root's PATH has and an ordinary user's often lacks (Debian
// gives users /usr/local/bin:/usr/bin:/bin): ip, nft, sysctl and tc live there.
var rootDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// RootEnviron returns environ with root's directories added to the end of PATH where they
// are missing: a program run as root of a user namespace expects to find root's tools, as
// under sudo, and the caller's own directories keep coming first.
func RootEnviron(environ []string) []string {
	out := slices.Clone(environ)
	i := slices.IndexFunc(out, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") })
	if i < 0 {
		return append(out, "PATH=/usr/local/bin:/usr/bin:/bin:"+strings.Join(rootDirs, ":"))
	}
	dirs := strings.Split(strings.TrimPrefix(out[i], "PATH="), ":")
	for _, d := range rootDirs {
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	out[i] = "PATH=" + strings.Join(dirs, ":")
	return out
}
