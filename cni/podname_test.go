package cni

import "testing"

// TestPodGuestName: a pod's attachment is named after the pod, its interface after the name
// unless it is eth0; no pod name, or one that makes no guest name, gives none.
func TestPodGuestName(t *testing.T) {
	for _, c := range []struct{ args, ifName, want string }{
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=db;K8S_POD_NAME=etcd-0;K8S_POD_INFRA_CONTAINER_ID=3f2a", "eth0", "etcd-0"},
		{"K8S_POD_NAME=etcd-0", "net1", "etcd-0-net1"},
		{"IP=172.18.0.5", "eth0", ""},
		{"K8S_POD_NAME=", "eth0", ""},
		{"K8S_POD_NAME=a-name-of-sixty-six-characters-is-more-than-a-guest-name-can-hold", "eth0", ""},
		{"K8S_POD_NAME=a-name-of-sixty-three-characters-is-the-most-a-guest-can-have-x", "eth0", "a-name-of-sixty-three-characters-is-the-most-a-guest-can-have-x"},
	} {
		if got := podGuestName(c.args, c.ifName); got != c.want {
			t.Errorf("podGuestName(%q, %q) = %q, want %q", c.args, c.ifName, got, c.want)
		}
	}
}
