package cni

import (
	"strings"
	"testing"
)

// TestPodGuestName: a pod's attachment is named after the pod and its namespace; no pod name,
// or names that make no guest name together, give none.
func TestPodGuestName(t *testing.T) {
	for _, c := range []struct{ args, want string }{
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=db;K8S_POD_NAME=etcd-0;K8S_POD_INFRA_CONTAINER_ID=3f2a", "etcd-0.db"},
		{"K8S_POD_NAME=etcd-0", "etcd-0"},
		{"IP=172.18.0.5", ""},
		{"K8S_POD_NAME=;K8S_POD_NAMESPACE=db", ""},
		{"K8S_POD_NAME=" + strings.Repeat("p", 60) + ";K8S_POD_NAMESPACE=db", strings.Repeat("p", 60) + ".db"}, // 63
		{"K8S_POD_NAME=" + strings.Repeat("p", 60) + ";K8S_POD_NAMESPACE=dbx", ""},                             // 64: too long
	} {
		if got := podGuestName(c.args); got != c.want {
			t.Errorf("podGuestName(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}
