// Package containerd runs one container in containerd the way `runc run` runs one from a
// bundle: in the foreground, with the container's stdout and stderr on its own, forwarding
// the signals it receives to the container, and exiting with the container's status. It is
// pontoon's containerd runtime backend, built into the separate pontoon-containerd binary
// (./pontoon-containerd): containerd's client library adds several milliseconds to the
// start of any program linking it, and pontoon itself starts once per OCI hook.
//
// Commands (Main's arguments):
//
//	run    --address SOCK --namespace NS [--image REF] [--stdin] [--runc-root DIR] --bundle DIR ID
//	kill   --address SOCK --namespace NS [--signal KILL] ID
//	delete --address SOCK --namespace NS ID
//
// run reads DIR/config.json as the container's spec, hooks included. Without --image the
// spec's root path is the root filesystem, a plain directory (oci.WithRootFSPath: no image,
// no snapshot). With --image, REF must already be in containerd's image store in NS:
// nothing is ever pulled; an image that is stored but not unpacked is unpacked. A container
// left over under ID by a run that was killed is removed first.
package containerd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/pontoon-dev/pontoon/internal/sigready"
	"golang.org/x/sys/unix"
)

// Main runs a command (see the package documentation) and returns the exit status: the
// container's for run, 0 or 1 for kill and delete, 125 when the helper itself fails.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "pontoon-containerd: no command; use run, kill or delete")
		return 2
	}
	cmd := args[0]
	fs := flag.NewFlagSet("pontoon-containerd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	address := fs.String("address", "/run/containerd/containerd.sock", "containerd's socket")
	ns := fs.String("namespace", "pontoon", "containerd namespace")
	bundle := fs.String("bundle", "", "bundle directory (run)")
	image := fs.String("image", "", "image reference in containerd's store to use as the root (run)")
	withStdin := fs.Bool("stdin", false, "forward stdin to the container (run)")
	sig := fs.String("signal", "KILL", "signal to send (kill)")
	runcRoot := fs.String("runc-root", "", "state directory of the runc the shim runs (run); default the shim's")
	withInit := fs.Bool("init", false, "the container's process is pontoon's init (run): signals wait until it has started the program")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "pontoon-containerd %s: give exactly one container id\n", cmd)
		return 2
	}
	id := fs.Arg(0)
	// Before anything is made: a signal sent from here on is passed to the container, not
	// the end of this process that would leave the container to gc.
	sigc := make(chan os.Signal, 8)
	if cmd == "run" {
		signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
		defer signal.Stop(sigc)
	}
	client, err := containerd.New(*address, containerd.WithDefaultNamespace(*ns), containerd.WithTimeout(10*time.Second))
	if err != nil {
		fmt.Fprintf(stderr, "pontoon-containerd: connect to containerd at %s: %v\n", *address, err)
		return 125
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), *ns)
	switch cmd {
	case "run":
		if *bundle == "" {
			fmt.Fprintln(stderr, "pontoon-containerd run: --bundle is required")
			return 2
		}
		var in io.Reader
		if *withStdin {
			in = stdin
		}
		code, err := run(ctx, client, id, *bundle, *image, *runcRoot, *withInit, in, stdout, stderr, sigc)
		if err != nil {
			fmt.Fprintf(stderr, "pontoon-containerd: %v\n", err)
			return 125
		}
		return code
	case "kill":
		s := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(*sig), "SIG"))
		if s == 0 {
			fmt.Fprintf(stderr, "pontoon-containerd kill: unknown signal %q\n", *sig)
			return 2
		}
		if err := kill(ctx, client, id, s); err != nil {
			fmt.Fprintf(stderr, "pontoon-containerd: %v\n", err)
			return 1
		}
		return 0
	case "delete":
		if err := remove(ctx, client, id); err != nil {
			fmt.Fprintf(stderr, "pontoon-containerd: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "pontoon-containerd: unknown command %q; use run, kill or delete\n", cmd)
	return 2
}

func run(ctx context.Context, client *containerd.Client, id, bundle, image, runcRoot string, withInit bool, stdin io.Reader, stdout, stderr io.Writer, sigc <-chan os.Signal) (int, error) {
	bundle, err := filepath.Abs(bundle)
	if err != nil {
		return 0, err
	}
	var spec oci.Spec
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return 0, fmt.Errorf("read bundle of %s: %w", id, err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return 0, fmt.Errorf("read bundle of %s: %w", id, err)
	}
	if err := remove(ctx, client, id); err != nil {
		return 0, fmt.Errorf("remove the leftover container %s: %w", id, err)
	}
	var opts []containerd.NewContainerOpts
	if runcRoot != "" {
		opts = append(opts, containerd.WithRuntime("io.containerd.runc.v2", &options.Options{Root: runcRoot}))
	}
	if image != "" {
		img, err := client.GetImage(ctx, image)
		if errdefs.IsNotFound(err) {
			ns, _ := namespaces.Namespace(ctx)
			return 0, fmt.Errorf("image %q is not in containerd's store (namespace %s); pontoon never pulls: get it there first, e.g. `ctr -n %s images pull %s`", image, ns, ns, image)
		}
		if err != nil {
			return 0, fmt.Errorf("look up image %q: %w", image, err)
		}
		if ok, err := img.IsUnpacked(ctx, ""); err != nil || !ok {
			if err := img.Unpack(ctx, ""); err != nil {
				return 0, fmt.Errorf("unpack image %q: %w", image, err)
			}
		}
		spec.Root.Path = "rootfs"
		opts = append(opts, containerd.WithImage(img), containerd.WithNewSnapshot(id+"-rootfs", img), containerd.WithSpec(&spec))
	} else {
		root := spec.Root.Path
		if !filepath.IsAbs(root) {
			root = filepath.Join(bundle, root)
		}
		opts = append(opts, containerd.WithSpec(&spec, oci.WithRootFSPath(root)))
	}
	c, err := client.NewContainer(ctx, id, opts...)
	if err != nil {
		return 0, fmt.Errorf("create container %s: %w", id, err)
	}
	defer c.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	// The FIFOs live in the bundle, so nothing is left in containerd's default FIFO
	// directory and the bundle's removal takes them along.
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(stdin, stdout, stderr), cio.WithFIFODir(filepath.Join(bundle, "fifo"))))
	if err != nil {
		return 0, fmt.Errorf("create task %s: %w", id, err)
	}
	defer task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	exitc, err := task.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("wait for task %s: %w", id, err)
	}
	gate := sigready.Gate{PID: func() int { return int(task.Pid()) }, Init: withInit}
	// Told to stop before the program started (pontoon gone: this process's Pdeathsig): it
	// does not start; the deferred deletes take the task and container away.
	for len(sigc) > 0 {
		s := (<-sigc).(syscall.Signal)
		switch s {
		case syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT:
			return 128 + int(s), nil
		}
		gate.Add(s)
	}
	if err := task.Start(ctx); err != nil {
		return 0, fmt.Errorf("start task %s: %w", id, err)
	}
	send := func(s syscall.Signal) {
		if err := task.Kill(ctx, s); err != nil && !errdefs.IsNotFound(err) {
			fmt.Fprintf(stderr, "pontoon-containerd: forward %v to %s: %v\n", s, id, err)
		}
	}
	var held <-chan time.Time
	if gate.Release(send) {
		held = time.After(sigready.Poll)
	}
	for {
		select {
		case s := <-sigc:
			gate.Add(s.(syscall.Signal))
			if gate.Release(send) && held == nil {
				held = time.After(sigready.Poll)
			}
		case <-held:
			held = nil
			if gate.Release(send) {
				held = time.After(sigready.Poll)
			}
		case st := <-exitc:
			code, _, err := st.Result()
			if err != nil {
				return 0, fmt.Errorf("task %s: %w", id, err)
			}
			return int(code), nil
		}
	}
}

func kill(ctx context.Context, client *containerd.Client, id string, sig syscall.Signal) error {
	c, err := client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load task %s: %w", id, err)
	}
	if err := task.Kill(ctx, sig, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill task %s: %w", id, err)
	}
	return nil
}

// remove deletes container id and its task, killing the task if it still runs. Removing a
// container that does not exist succeeds.
func remove(ctx context.Context, client *containerd.Client, id string) error {
	c, err := client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task %s: %w", id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("load task %s: %w", id, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	return nil
}
