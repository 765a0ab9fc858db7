package netsetup

import (
	"github.com/google/nftables"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/testkit"
)

// TestBridgeTable6TextMatchesKernel installs a dual-stack bridge table from its dry-run script
// through nft(8) and from its expressions through netlink, and compares what the kernel lists:
// the rules exactly, and the sets' elements by their bytes (nft prints a set declared by raw
// keys in hex, the same set made through netlink by its types).
func TestBridgeTable6TextMatchesKernel(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft(8) to load the text form")
	}
	t.Parallel()
	plan := DefaultPlan()
	plan.Subnet6 = DefaultPlan6()
	spec := bridgeL2Table(plan)
	dir := t.TempDir()
	viaText, viaExprs := scratchNetns(t, dir, "text6"), scratchNetns(t, dir, "exprs6")
	for range 2 {
		cmd := exec.Command("nsenter", "--net="+viaText, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(heredoc(spec.show("")))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft -f rejected the dry-run script: %v\n%s", err, out)
		}
	}
	n, err := kernel.OpenNS(viaExprs)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := replaceTable(n, spec); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"prerouting", "forward"} {
		a, b := listIn(t, viaText, "chain", ch), listIn(t, viaExprs, "chain", ch)
		if a != b {
			t.Errorf("chain %s differs\nfrom text:\n%s\nfrom expressions:\n%s", ch, a, b)
		}
		if ch == "prerouting" && !strings.Contains(a, "ether saddr . @th,64,128 @ndtargets6") {
			t.Errorf("prerouting lacks the neighbour advertisement target check:\n%s", a)
		}
	}
	for _, s := range spec.sets {
		if s.timeout > 0 {
			// A dynamic set starts empty: its declaration is what there is to compare (nft
			// keeps a typeof in user data the netlink library cannot write).
			a := listIn(t, viaText, "set", s.name)
			if s.typeOf != "" {
				a = strings.Replace(a, "typeof "+s.typeOf, "type 0", 1)
			}
			if b := listIn(t, viaExprs, "set", s.name); a != b || !strings.Contains(a, "flags dynamic,timeout") {
				t.Errorf("set %s differs\nfrom text:\n%s\nfrom expressions:\n%s", s.name, a, b)
			}
			// What the listing leaves out: the key's length, which the rules' loads must fill.
			if a, b := keyLen(t, viaText, s.name), keyLen(t, viaExprs, s.name); a != b || a != s.types[0].Bytes {
				t.Errorf("set %s: key of %d bytes from text, %d from expressions; want %d", s.name, a, b, s.types[0].Bytes)
			}
			continue
		}
		a, b := setBytes(t, viaText, s.name), setBytes(t, viaExprs, s.name)
		if a != b || a == "" {
			t.Errorf("set %s differs\nfrom text:\n%s\nfrom expressions:\n%s", s.name, a, b)
		}
	}
}

// keyLen is the length the kernel gives the key of a set of pontoon's bridge table.
func keyLen(t *testing.T, nsPath, set string) uint32 {
	t.Helper()
	n, err := kernel.OpenNS(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Nftables()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.GetSetByName(&nftables.Table{Name: TableName, Family: nftables.TableFamilyBridge}, set)
	if err != nil {
		t.Fatalf("set %s: %v", set, err)
	}
	return s.KeyType.Bytes
}

func listIn(t *testing.T, nsPath, what, name string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+nsPath, "nft", "list", what, "bridge", TableName, name).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list %s %s: %v\n%s", what, name, err, out)
	}
	return string(out)
}

var hexRun = regexp.MustCompile(`[0-9a-f]{2}`)

// setBytes lists a set's element keys as hex bytes, whatever form nft prints them in.
func setBytes(t *testing.T, nsPath, name string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+nsPath, "nft", "--debug=netlink", "list", "set", "bridge", TableName, name).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list set %s: %v\n%s", name, err, out)
	}
	var keys []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "element ") {
			words, _, _ := strings.Cut(l, ":")
			keys = append(keys, strings.Join(hexRun.FindAllString(words, -1), ""))
		}
	}
	slices.Sort(keys) // a hash set lists in no fixed order
	return strings.Join(keys, "\n")
}
