package cni_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/cni"
)

// badConfigs are configurations that must be refused, each with the field the error names.
var badConfigs = []struct {
	conf, field string
}{
	{`[]`, "(whole)"},
	{`{"cniVersion":"1.1.0","type":"pontoon-cni","bridge":"pods"}`, "name"},
	{`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni"}`, "bridge"},
	{`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"no/slash"}`, "bridge"},
	{`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","bridg":"x"}`, "bridg"},
	{`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","createBridge":"yes"}`, "createBridge"},
	{`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","plan":"10.0.0.0/8"}`, "plan"},
	{`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","ipam":{"type":"host-local"}}`, "ipam"},
	{`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","runtimeConfig":{"ips":"172.18.0.5/24"}}`, "runtimeConfig.ips"},
	// Keys of CNI's own part of the configuration, not types.PluginConf's Go names.
	{`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","dns":"8.8.8.8"}`, "dns"},
	{`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","capabilities":[]}`, "capabilities"},
	{`{"cniVersion":"1.1.0","name":"n","type":7,"bridge":"pods"}`, "type"},
}

func TestParseConfigNamesTheField(t *testing.T) {
	for _, c := range badConfigs {
		_, err := cni.ParseConfig([]byte(c.conf))
		if err == nil {
			t.Errorf("%s: accepted", c.conf)
			continue
		}
		if !strings.HasPrefix(err.Error(), `config field "`+c.field+`"`) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q; want one line starting with config field %q", c.conf, err, c.field)
		}
	}
	if _, err := cni.ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","dns":"8.8.8.8"}`)); err == nil ||
		err.Error() != `config field "dns": is string, must be an object` {
		t.Errorf("dns as a string: %v", err)
	}
	good := `{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","createBridge":true,"plan":"10.77.0.0/16",
		"capabilities":{"ips":true},"runtimeConfig":{"ips":["10.77.0.9/24"]},"cni.dev/valid-attachments":[]}`
	if _, err := cni.ParseConfig([]byte(good)); err != nil {
		t.Fatalf("a good configuration was refused: %v", err)
	}
}

func TestGuestNameFromAttachment(t *testing.T) {
	for id, want := range map[string]string{
		"3f2a9c1d0b7e55aa66bb": "3f2a9c1d0b7e-eth0",
		"short":                "short-eth0",
		"-dash":                "c-dash-eth0",
		"!!!":                  "c-eth0",
	} {
		if got := cni.GuestName(id, "eth0"); got != want {
			t.Errorf("GuestName(%q) = %q, want %q", id, got, want)
		}
	}
}

// TestBinaryRefusesBadConfig runs the plugin binary as a runtime does with a bad
// configuration: the error is CNI's JSON with code 7 and a one-line message naming the
// field, and nothing is created.
func TestBinaryRefusesBadConfig(t *testing.T) {
	r := newRig(t)
	nsPath := r.netns("a")
	for _, c := range badConfigs[1:] {
		cmd := exec.Command(pluginBinary(t))
		cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID=bad1", "CNI_NETNS="+nsPath, "CNI_IFNAME=eth0", "CNI_PATH="+r.bin)
		cmd.Stdin = strings.NewReader(c.conf)
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := r.inHost(cmd.Run); err == nil {
			t.Fatalf("%s: ADD succeeded", c.conf)
		}
		var e struct {
			Code uint   `json:"code"`
			Msg  string `json:"msg"`
		}
		if err := json.Unmarshal(out.Bytes(), &e); err != nil {
			t.Fatalf("%s: stdout %q is not a CNI error: %v", c.conf, out.String(), err)
		}
		// The CNI library checks the name itself ("missing network name").
		if e.Code != 7 || !strings.Contains(e.Msg, c.field) || strings.Contains(e.Msg, "\n") {
			t.Errorf("%s: code %d msg %q; want 7 and one line naming %q", c.conf, e.Code, e.Msg, c.field)
		}
	}
	// A wrong interface name is refused the same way.
	cmd := exec.Command(pluginBinary(t))
	cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID=bad2", "CNI_NETNS="+nsPath, "CNI_IFNAME=net1", "CNI_PATH="+r.bin)
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0","name":"n","type":"pontoon-cni","bridge":"pods","createBridge":true}`)
	out, _ := cmd.Output()
	if !strings.Contains(string(out), `environment variable \"CNI_IFNAME\"`) || !strings.Contains(string(out), `"code": 4`) {
		t.Errorf("ADD with CNI_IFNAME=net1: %s; want code 4 naming CNI_IFNAME", out)
	}
	if _, err := os.Stat(r.sb.Env.GatewayNetns()); err == nil {
		t.Fatal("a refused ADD brought the gateway up")
	}
	if got := links(t, nsPath); len(got) != 1 {
		t.Fatalf("a refused ADD changed the namespace: %v", got)
	}
}
