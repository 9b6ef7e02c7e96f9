package policystore

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
)

// trickyPolicies are policies whose strings and comments hold semicolons,
// quotes and backslashes, two of them on one line, one over several.
func trickyPolicies(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "// policy %d; with \"a quote\n@id(\"p%d;\\\"x\\\\\")\npermit (principal, action, resource)\n  when { context.s == \"a;b\\\\\" };\n", i, i)
		case 1:
			fmt.Fprintf(&b, "permit (principal == User::\"u%d\", action, resource); forbid (principal, action, resource) when { context.n == %d }; // end;\n", i, i)
		case 2:
			fmt.Fprintf(&b, "forbid (\n  principal,\n  action in [Action::\"a;\", Action::\"b\"],\n  resource\n)\nunless { context.t == \"//;\" }\n;\n")
		default:
			fmt.Fprintf(&b, "\n\n@id(\"q%d\") permit (principal, action, resource);\n", i)
		}
	}
	return b.Bytes()
}

// TestSplitPoliciesMatchesWholeFile: parsed in pieces of any size, a file
// yields the policies a parse of the whole file yields, with the same
// positions and so the same ids.
func TestSplitPoliciesMatchesWholeFile(t *testing.T) {
	t.Parallel()
	text := trickyPolicies(40)
	whole, err := cedar.NewPolicyListFromBytes("p.cedar", text)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 50, 333, 1 << 20} {
		pieces := splitPolicies(text, size)
		var joined []byte
		var got []parsedPolicy
		for _, pc := range pieces {
			joined = append(joined, pc.text...)
			list, err := parsePiece("p.cedar", pc)
			if err != nil {
				t.Fatalf("size %d: piece at line %d: %v", size, pc.line, err)
			}
			got = append(got, list...)
		}
		if !bytes.Equal(joined, text) {
			t.Fatalf("size %d: pieces do not add up to the file", size)
		}
		if size == 1 && len(pieces) < 20 {
			t.Fatalf("size 1: only %d pieces", len(pieces))
		}
		if len(got) != len(whole) {
			t.Fatalf("size %d: %d policies, want %d", size, len(got), len(whole))
		}
		for i, p := range got {
			if p.policy.Position() != whole[i].Position() || !bytes.Equal(p.policy.MarshalCedar(), whole[i].MarshalCedar()) {
				t.Fatalf("size %d: policy %d at %v is %s, want at %v: %s", size, i,
					p.policy.Position(), p.policy.MarshalCedar(), whole[i].Position(), whole[i].MarshalCedar())
			}
		}
	}
}

// TestLargePolicyFileErrorLine: an error far down a file parsed in pieces
// is reported at its line in the file.
func TestLargePolicyFileErrorLine(t *testing.T) {
	t.Parallel()
	good := trickyPolicies(8000)
	if len(good) < 2*policyPiece {
		t.Fatalf("the file is %d bytes: too small to be cut", len(good))
	}
	text := append(bytes.Clone(good), "permit (principal, action, resource) when { ) };\n"...)
	_, wantErr := cedar.NewPolicyListFromBytes("p.cedar", text)
	c := &compiler{bundle: &Bundle{Files: map[string][]byte{"p.cedar": text}}}
	if list := c.textPolicies("p.cedar"); list != nil || len(c.problems) != 1 {
		t.Fatalf("got %d policies and problems %v, want one problem", len(list), c.problems)
	}
	line := bytes.Count(good, []byte("\n")) + 1
	p := c.problems[0]
	if p.Line != line || !strings.Contains(wantErr.Error(), p.Message) {
		t.Fatalf("problem %v, want line %d and the message of %q", p, line, wantErr)
	}
}
