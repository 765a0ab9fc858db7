package config_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/runtime/config"
)

func ExampleParse() {
	src := `[commands.cluster]
supervise = true
[commands.cluster.children.n1]
run = ["kvnode", "--id", "1"]
ip = "172.18.0.1"
[commands.cluster.children.n2]
run = ["kvnode", "--id", "2"]
ip = "172.18.0.300"
descripton = "second node"
`
	_, err := config.Parse("pontoon.toml", []byte(src))
	fmt.Println(err)
	// Output:
	// pontoon.toml:8: commands.cluster.children.n2.ip: "172.18.0.300" is not an IPv4 address; use 172.18.0.1-172.18.0.253
	// pontoon.toml:9: commands.cluster.children.n2.descripton: unknown key; did you mean "description"?
}

// TestDocExample keeps the schema example in doc.go valid.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "// # Schema\n")
	if !ok {
		t.Fatal("doc.go has no Schema section")
	}
	var src strings.Builder
	for _, line := range strings.Split(rest, "\n") {
		if strings.HasPrefix(line, "// Rules") {
			break
		}
		src.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "//"), "\t") + "\n")
	}
	p, err := config.Parse("doc.go", []byte(src.String()))
	if err != nil {
		t.Fatalf("the example in doc.go is invalid:\n%v\n%s", err, src.String())
	}
	var names []string
	for _, s := range p.List() {
		names = append(names, s.Name)
		for _, c := range s.Children {
			names = append(names, s.Name+"."+c.Name)
		}
	}
	if got, want := strings.Join(names, " "), "test cluster cluster.n1 cluster.n2 cluster.chaos"; got != want {
		t.Errorf("commands = %q, want %q", got, want)
	}
}
