package runtime_test

import (
	"os"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
)

// Engines in these tests run this test binary as pontoon's hook.
func TestMain(m *testing.M) {
	hooktest.Dispatch()
	os.Exit(m.Run())
}
