package partition

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
)

// A rule's tag says which committed rule it stands for, not what it does: `nft replace
// rule ... comment "pontoon ..."` keeps the tag and changes the match or the verdict, and a
// chain deleted and added again by hand keeps its name and its rules' tags at another hook.
// So status also compares what each chain and rule does, as the kernel encodes it, with what
// the recorded state compiles to. The next change repairs such an edit (see wroteGen); until
// then status must say it is there.

// contentProblems compares the chains and rules read (readChains) with those the record's
// state compiles to over the guests it was committed for (over guests for a record of before
// they were kept). A chain whose compiled fingerprint is not the committed one is not
// compared: checkRules has said what differs.
func contentProblems(kt kernelTable, st Record, guests []Guest, read chainsRead) []string {
	if len(kt.Present) != 1 {
		return nil
	}
	b := kt.Present[0]
	if len(st.Guests) > 0 {
		guests = st.Guests // those of the commit, a guest that left since included
	}
	r, err := resolveState(st.State().For(guests), guests)
	if err != nil {
		// What was committed compiled; a record that does not is pontoon's to explain, not
		// the kernel's, and says nothing of what the kernel holds.
		return nil
	}
	plan := r.plan(b)
	sets := ruleSets(nftTable(b), kt.InUse)
	fam := byte(b.nftFamily())
	var problems []string
	for _, ch := range plan.RuleSet.Chains {
		got, ok := read.chains[ch.Name]
		if !ok || ch.sum() != st.Chains[ch.Name] {
			continue
		}
		if p := hookProblem(ch, got); p != "" {
			problems = append(problems, p)
		}
		rules := read.rules[ch.Name]
		if len(rules) != len(ch.Rules) {
			continue // checkRules has reported it
		}
		for i, rule := range ch.Rules {
			m, err := rule.matches(func(name string) *nftables.Set { return sets[name] })
			if err == nil && !nftwire.SameExprs(fam, m.Exprs(), rules[i].Exprs) {
				err = fmt.Errorf("it keeps its comment but does something else")
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("rule %d of chain %s was rewritten (%v)", i+1, ch.Name, err))
				break
			}
		}
	}
	return problems
}

// chainMoved tells whether the kernel's chain got sits elsewhere than ch: at another hook,
// priority or device, or hooked when ch is a regular chain or the other way round.
func chainMoved(ch Chain, got nftwire.Chain) bool {
	if ch.Hook == "" || !got.Hooked {
		return (ch.Hook == "") != !got.Hooked
	}
	hook, ok := chainHook(ch.Hook)
	return !ok || got.Hook != uint32(*hook) || got.Priority != int32(ch.Priority) || got.Device != ch.Device || got.Type != "filter"
}

// hookProblem says how the kernel's chain got sits elsewhere than ch, "" when it does not.
func hookProblem(ch Chain, got nftwire.Chain) string {
	switch {
	case !chainMoved(ch, got):
		return ""
	case ch.Hook == "":
		return fmt.Sprintf("chain %s was made a base chain (hook %d, by hand)", ch.Name, got.Hook)
	case !got.Hooked:
		return fmt.Sprintf("chain %s is no longer hooked into the %s path (by hand)", ch.Name, ch.Hook)
	}
	return fmt.Sprintf("chain %s was re-created elsewhere by hand: hook %d priority %d device %q, not %s priority %d device %q",
		ch.Name, got.Hook, got.Priority, got.Device, ch.Hook, ch.Priority, ch.Device)
}
