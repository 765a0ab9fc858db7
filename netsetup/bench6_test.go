package netsetup_test

import (
	"fmt"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// BenchmarkAttachFamilies measures attaching a guest to a bridge of 10 and detaching it again,
// on an IPv4-only chain and on a dual-stack one: what the guest's IPv6 (addresses, route,
// sysctls) costs an attach.
func BenchmarkAttachFamilies(b *testing.B) {
	for _, fam := range []string{"ipv4", "dual"} {
		b.Run(fam, func(b *testing.B) {
			needRoot(b)
			s := sandbox.ForTest(b, sandbox.TmpfsDir(b))
			if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{IPv4Only: fam == "ipv4"}); err != nil {
				b.Fatal(err)
			}
			mustBridge(b, s.Env, "bench", netsetup.BridgeOptions{})
			for i := 1; i <= 10; i++ {
				mustGuest(b, s.Env, "bench", fmt.Sprintf("g%d", i), fmt.Sprintf("172.18.0.%d", i))
			}
			for b.Loop() {
				mustGuest(b, s.Env, "bench", "extra", "172.18.0.250")
				if err := netsetup.DelGuest(s.Env, "bench", "extra"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
