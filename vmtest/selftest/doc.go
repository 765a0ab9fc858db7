// Package selftest proves the stock-kernel VM lane (vmtest/run.sh) works: inside
// the VM a netem qdisc really delays traffic between two network namespaces.
// Its only content is a test; outside the VM the test skips.
package selftest
