package partition

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// A rule's tag says which committed rule it stands for, not what it does: `nft replace
// rule ... comment "pontoon ..."` keeps the tag and changes the match or the verdict. So
// status also compares what each rule does, as the kernel reports it, with what the
// recorded state compiles to. The next change repairs such an edit (see wroteGen); until
// then status must say it is there.

// contentProblems compares the expressions of the kernel's rules (by chain, read with
// their tags) with those the record's state compiles to over guests. A chain whose
// compiled fingerprint is not the committed one (the guests changed since) is not
// compared: what was committed cannot be rebuilt for it.
func contentProblems(kt kernelTable, st Record, guests []Guest, rules map[string][]*nftables.Rule) []string {
	if len(kt.Present) != 1 {
		return nil
	}
	b := kt.Present[0]
	r, err := resolveState(st.State().For(guests), guests)
	if err != nil {
		return nil
	}
	plan := r.plan(b)
	sets := ruleSets(nftTable(b), kt.InUse)
	fam := byte(b.nftFamily())
	var problems []string
	for _, ch := range plan.RuleSet.Chains {
		got, ok := rules[ch.Name]
		if !ok || ch.sum() != st.Chains[ch.Name] || len(got) != len(ch.Rules) {
			continue
		}
		for i, rule := range ch.Rules {
			m, err := rule.matches(func(name string) *nftables.Set { return sets[name] })
			if err != nil {
				break
			}
			want, err := exprBytes(fam, m.Exprs())
			if err != nil {
				break
			}
			have, err := exprBytes(fam, got[i].Exprs)
			if err != nil || !bytes.Equal(want, have) {
				problems = append(problems, fmt.Sprintf("rule %d of chain %s was rewritten (it keeps its comment but does something else)", i+1, ch.Name))
				break
			}
		}
	}
	return problems
}

// exprBytes encodes exprs as the kernel takes them, leaving out what the kernel does not
// report back or changes by itself: the batch-local ID of a looked-up set (the name says
// which) and a counter's values. The nftables library reads back only the expressions it
// knows and drops the others without a word; of pontoon's, that is byteorder (loss rules),
// which is left out on both sides.
func exprBytes(fam byte, exprs []expr.Any) ([]byte, error) {
	var out []byte
	for _, e := range exprs {
		if _, unread := e.(*expr.Byteorder); unread {
			continue
		}
		b, err := expr.Marshal(fam, comparable(e))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

func comparable(e expr.Any) expr.Any {
	switch v := e.(type) {
	case *expr.Lookup:
		c := *v
		c.SetID = 0
		return &c
	case *expr.Dynset:
		c := *v
		c.SetID = 0
		c.Exprs = slices.Clone(v.Exprs)
		for i, x := range c.Exprs {
			c.Exprs[i] = comparable(x)
		}
		return &c
	case *expr.Counter:
		return &expr.Counter{}
	}
	return e
}
