package runtime_test

import (
	"os"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/internal/enginetest"
)

// Engines in these tests run this test binary as pontoon: as the hook, as containers' init
// and as `pontoon exec` in bridge children; tests also run it as `pontoon run` to kill it.
func TestMain(m *testing.M) {
	hooktest.Dispatch()
	runtime.DispatchInit()
	enginetest.DispatchRun()
	dispatchExec()
	os.Exit(m.Run())
}
