package partition

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"golang.org/x/sys/unix"
)

// Backend names the kind of nftables table that enforces partitions in the
// bridge namespace. Both kinds hold the same set of blocked pairs and the
// same filter chain; they differ in where that chain is hooked and in the
// kernel module that builds resets and ICMP errors for reject mode and Cut.
// Apply chooses one from what the running kernel offers (DetectBackend).
type Backend string

const (
	// BackendNetdev is a netdev table with one base chain on the ingress hook
	// of each guest's port (and one on its egress hook for loss towards the
	// guest). Rejecting needs nft_reject_netdev (CONFIG_NFT_REJECT_NETDEV),
	// which Debian 12's stock kernel does not build.
	BackendNetdev Backend = "netdev"
	// BackendBridge is a bridge table with one base chain on the bridge's
	// prerouting hook and one on postrouting, which tell the guests' ports
	// apart by name (meta iifname, oifname). Rejecting needs nft_reject_bridge
	// (CONFIG_NFT_BRIDGE_REJECT), which Debian 12's stock kernel has.
	BackendBridge Backend = "bridge"
)

// backends lists every backend, in order of preference.
var backends = []Backend{BackendNetdev, BackendBridge}

// Family returns the nftables family of the backend's table ("netdev" or
// "bridge").
func (b Backend) Family() string { return string(b) }

// describe says in a line where the backend's chains are hooked.
func (b Backend) describe() string {
	switch b {
	case BackendNetdev:
		return "ingress chain on each guest port (egress for loss towards a guest), reject by nft_reject_netdev"
	case BackendBridge:
		return "bridge prerouting and postrouting chains matching guest ports by name, reject by nft_reject_bridge"
	}
	return "unknown"
}

func (b Backend) valid() bool { return b == BackendNetdev || b == BackendBridge }

// backendOf returns the backend whose table family is f.
func backendOf(f nftables.TableFamily) (Backend, bool) {
	for _, b := range backends {
		if b.nftFamily() == f {
			return b, true
		}
	}
	return "", false
}

func (b Backend) nftFamily() nftables.TableFamily {
	if b == BackendBridge {
		return nftables.TableFamilyBridge
	}
	return nftables.TableFamilyNetdev
}

// rejectFeature is the kernel module that rejects in the backend's family.
func (b Backend) rejectFeature() string { return "nft_reject_" + string(b) }

func nftTable(b Backend) *nftables.Table {
	return &nftables.Table{Name: TableName, Family: b.nftFamily()}
}

// support is what the running kernel offers each backend.
type support struct {
	// tables: a table of the backend's family can be created.
	tables map[Backend]bool
	// reject: nil when the backend's family has reject, else why not.
	reject map[Backend]error
}

// backend is the backend Apply uses: the first that can reject, so that
// every mode works; netdev when none can (drop mode still works there).
func (s support) backend() Backend {
	if forcedBackend != "" {
		return forcedBackend
	}
	for _, b := range backends {
		if s.tables[b] && s.reject[b] == nil {
			return b
		}
	}
	return BackendNetdev
}

// families lists the backends whose tables the kernel can hold, so that
// replacing or removing the partition table can remove it in every family
// without asking the kernel for a family it does not know.
func (s support) families() []Backend {
	var out []Backend
	for _, b := range backends {
		if s.tables[b] {
			out = append(out, b)
		}
	}
	return out
}

// rejectErr returns the FeatureError for rules of backend b that reject on
// behalf of need, or nil when b can reject.
func (s support) rejectErr(b Backend, need string) error {
	if s.reject[b] == nil {
		return nil
	}
	// The automatic choice lands on a backend without reject only when no
	// backend has it: then every kernel answer is part of the reason.
	var err error
	for _, o := range backends {
		if (o == b || forcedBackend == "") && s.reject[o] != nil {
			what := "reject in the " + o.Family() + " family"
			if !s.tables[o] {
				what = o.Family() + " family tables"
			}
			e := fmt.Errorf("the kernel refused %s (%s): %w", what, o.rejectFeature(), s.reject[o])
			if err != nil {
				e = fmt.Errorf("%w; %w", err, e)
			}
			err = e
		}
	}
	return &FeatureError{Feature: b.rejectFeature(), Need: need, Err: err}
}

// forcedBackend, when set (by tests), replaces the automatic choice.
var forcedBackend Backend

// kernelSupport is probed once per process: which kernel modules exist does
// not change while pontoon runs (modules that exist are loaded on demand).
var kernelSupport struct {
	sync.Mutex
	known bool
	s     support
}

// supportFor returns the kernel's support as probed in this process, or else a guess, with
// probed telling which. The guess is that both families take tables and that the backend
// last used on this bridge (netdev when none) can reject. A right guess costs nothing; a
// wrong one makes the kernel refuse the batch, which changes nothing, and the caller then
// probes and retries. Probing up front would cost every command-line call ~10 ms: asked
// for an expression it lacks, the kernel first tries to load a module for it.
func supportFor(last Backend) (support, bool) {
	kernelSupport.Lock()
	defer kernelSupport.Unlock()
	if kernelSupport.known {
		return kernelSupport.s, true
	}
	s := support{tables: map[Backend]bool{}, reject: map[Backend]error{}}
	if !last.valid() {
		last = BackendNetdev
	}
	for _, b := range backends {
		s.tables[b] = true
		if b != last {
			s.reject[b] = errNotProbed
		}
	}
	return s, false
}

var errNotProbed = errors.New("not probed")

// probeTable is the throwaway table of a probe; it is created and deleted in
// the same transaction, so it never becomes visible.
const probeTable = "pontoon_partition_probe"

// probeSupport finds out, through the nf_tables connection of the namespace
// at nsPath, which families and reject expressions the kernel has. Each
// probe is one transaction that adds a table with a reject rule and deletes
// it again: the kernel either refuses the whole batch or commits nothing
// visible, so the namespace is never changed. A failure that says nothing
// about the kernel's features (permissions, a gone namespace) is returned
// and not remembered.
func probeSupport(nsPath string) (support, error) {
	kernelSupport.Lock()
	defer kernelSupport.Unlock()
	if kernelSupport.known {
		return kernelSupport.s, nil
	}
	s := support{tables: map[Backend]bool{}, reject: map[Backend]error{}}
	err := nftpool.With(nsPath, func(c *nftables.Conn) error {
		for _, b := range backends {
			tables, reject, err := probeFamily(c, b)
			if err != nil {
				return fmt.Errorf("probe nftables %s family: %w", b.Family(), err)
			}
			s.tables[b], s.reject[b] = tables, reject
		}
		return nil
	})
	if err != nil {
		return support{}, fmt.Errorf("probe kernel features in %q: %w", nsPath, err)
	}
	kernelSupport.known, kernelSupport.s = true, s
	return s, nil
}

// probeFamily reports whether b's family takes tables and, if it does not
// take a reject rule, the kernel's answer.
func probeFamily(c *nftables.Conn, b Backend) (tables bool, reject error, err error) {
	t := &nftables.Table{Name: probeTable, Family: b.nftFamily()}
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{Name: "probe", Table: t})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: nftrule.RejectTCPReset().Exprs})
	c.DelTable(t)
	rerr := flush(c)
	if rerr == nil {
		return true, nil, nil
	}
	if !missingFeature(rerr) {
		return false, nil, rerr
	}
	c.AddTable(t)
	c.DelTable(t)
	if terr := flush(c); terr != nil {
		if !missingFeature(terr) {
			return false, nil, terr
		}
		return false, kernelAnswer(terr), nil
	}
	return true, kernelAnswer(rerr), nil
}

// kernelAnswer reduces a refused batch to the kernel's errno, which is all
// it says ("no such file or directory" for an unknown expression).
func kernelAnswer(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// missingFeature reports a kernel answer meaning "no such expression, chain
// type or family", as opposed to a failure of the request itself.
func missingFeature(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT)
}

// DetectBackend returns the backend Apply uses on the running kernel,
// probing it through the network namespace at netnsPath (any namespace will
// do; the bridge's is what Apply uses) without changing anything there. The
// answer is remembered for the life of the process.
func DetectBackend(netnsPath string) (Backend, error) {
	s, err := probeSupport(netnsPath)
	if err != nil {
		return "", err
	}
	return s.backend(), nil
}
