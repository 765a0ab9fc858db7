package runtime_test

import (
	"testing"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
	"github.com/pontoon-dev/pontoon/runtime/internal/enginetest"
)

func engine(t *testing.T, name config.Runtime) runtime.Engine {
	t.Helper()
	hooktest.NeedRoot(t)
	hooktest.NeedCommand(t, string(name), string(name))
	// A private state directory: the test's containers never mix with the host's.
	eng, err := runtime.NewEngine(name, runtime.EngineOptions{RuntimeRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func TestRuncWithHook(t *testing.T) {
	enginetest.New(t, engine(t, config.RuntimeRunc)).Scenario()
}

func TestCrunWithHook(t *testing.T) {
	enginetest.New(t, engine(t, config.RuntimeCrun)).Scenario()
}
