package hooks_test

import (
	"os"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
)

// The engines in these tests run this test binary as the hook ("hooks.test hook STAGE ...").
func TestMain(m *testing.M) {
	hooktest.Dispatch()
	os.Exit(m.Run())
}
