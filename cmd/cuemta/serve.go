package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/cuemta/cuemta/internal/privdrop"
	"github.com/cuemta/cuemta/server"
)

// runServe implements `cuemta serve [-c PATH]`: load and validate the
// config (the embedded default without -c), run until SIGTERM or SIGINT,
// then shut down cleanly.
func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config `PATH`: a directory holding a CUE package, or a .cue file (default: embedded)")
	logJSON := fs.Bool("log-json", false, "write the process log as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `FILE` until the server stops (for performance work)")
	memProfile := fs.String("memprofile", "", "write a heap profile (allocations since the start) to `FILE` when the server stops (for performance work)")
	logLevel := fs.String("log-level", "info", "process log `level`: debug (a line per message and delivery), info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "cuemta serve: -log-level: %v\n", err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(stderr, opts)
	if *logJSON {
		handler = slog.NewJSONHandler(stderr, opts)
	}
	logger := slog.New(handler)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "cuemta serve: -cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "cuemta serve: -cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			fmt.Fprintf(stderr, "cuemta serve: -memprofile: %v\n", err)
			return 1
		}
		defer func() {
			defer f.Close()
			// Allocations are sampled all along; the profile holds them all
			// (go tool pprof -sample_index=alloc_space).
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(stderr, "cuemta serve: -memprofile: %v\n", err)
			}
		}()
	}

	snap, err := server.Load(*path)
	if err != nil {
		for _, l := range server.ErrorLines(err) {
			fmt.Fprintln(stderr, l)
		}
		return 1
	}
	setMemoryLimit(logger, memlimit.FromCgroup)
	cfg := snap.Config
	plan, err := privdrop.Decide(privdrop.Settings{User: cfg.User, Group: cfg.Group, AllowRoot: cfg.AllowRoot},
		privdrop.Current(), privdrop.System{})
	if err != nil {
		fmt.Fprintf(stderr, "cuemta serve: %v\n", err)
		return 1
	}
	if plan.Warning != "" {
		logger.Warn(plan.Warning)
	}
	var sockets *server.Sockets
	if plan.Action == privdrop.Switch {
		sockets, snap, err = switchUser(*path, snap, plan.Account, logger, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "cuemta serve: %v\n", err)
			return 1
		}
		defer sockets.Close()
	}
	srv, err := server.New(*path, snap, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	srv.UseSockets(sockets)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// SIGHUP reloads the config; a bad one is refused and logged.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				srv.Reload(ctx, "sighup")
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := srv.Run(ctx); err != nil {
		logger.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}

// switchUser is serve's start as root with user set: bind every socket
// (ports below 1024 need root), give the spool and the delivery log to the
// account, drop to it for good, check it can use them, then load the
// config again as the account. The second load is the one that runs: the
// config files, DKIM keys, TLS keys and recipient files are read as the
// account at every reload, so a file only root can read fails the start,
// naming the file, instead of the first reload.
func switchUser(path string, snap *server.Snapshot, a privdrop.Account, logger *slog.Logger, stderr io.Writer) (*server.Sockets, *server.Snapshot, error) {
	cfg := snap.Config
	sockets, err := server.Bind(cfg)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*server.Sockets, *server.Snapshot, error) {
		sockets.Close()
		return nil, nil, err
	}
	if err := server.PrepareFor(cfg, a); err != nil {
		return fail(err)
	}
	if err := privdrop.Drop(a); err != nil {
		return fail(err)
	}
	logger.Info("privileges dropped", "user", a.User, "uid", a.UID, "group", a.Group, "gid", a.GID, "groups", fmt.Sprint(a.Groups))
	if err := server.CheckAfterDrop(cfg, a); err != nil {
		return fail(err)
	}
	again, err := server.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "cuemta serve: the config does not load as user %s:\n", a.User)
		for _, l := range server.ErrorLines(err) {
			fmt.Fprintln(stderr, l)
		}
		return fail(fmt.Errorf("give user %s read access to the files named above", a.User))
	}
	return sockets, again, nil
}
