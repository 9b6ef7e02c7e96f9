package bundlesrc

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DirWatcher reports changes under a bundle directory once they settle.
// It watches directories rather than files, so editors that save by writing
// a new file and renaming it over the old one are seen like any write, and
// it waits for a quiet cooldown so that files copied in one by one give one
// reload of the complete bundle instead of several of partial ones.
type DirWatcher struct {
	root     string
	cooldown time.Duration
	log      *slog.Logger
	w        *fsnotify.Watcher
}

// NewDirWatcher starts watching root and its subdirectories; changes are
// reported only once Run is called, but none made after NewDirWatcher
// returns is missed.
func NewDirWatcher(root string, cooldown time.Duration, log *slog.Logger) (*DirWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	d := &DirWatcher{root: root, cooldown: cooldown, log: log, w: w}
	if err := d.addTree(root); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	return d, nil
}

// addTree watches dir and every directory below it.
func (d *DirWatcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return d.w.Add(p)
		}
		return nil
	})
}

// Run calls changed once per settled burst of changes, until ctx ends; it
// then stops watching. changed runs on Run's goroutine.
func (d *DirWatcher) Run(ctx context.Context, changed func()) {
	defer d.w.Close()
	timer := time.NewTimer(d.cooldown)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-d.w.Events:
			if !ok {
				return
			}
			d.follow(ev)
			timer.Reset(d.cooldown)
		case err, ok := <-d.w.Errors:
			if !ok {
				return
			}
			// An overflow loses events: reload anyway, the bundle is read whole.
			d.log.Warn("bundle directory watch error", "dir", d.root, "err", err)
			timer.Reset(d.cooldown)
		case <-timer.C:
			changed()
		}
	}
}

// follow starts watching directories created under the root, so that a
// tests/ directory added later is watched too.
func (d *DirWatcher) follow(ev fsnotify.Event) {
	if !ev.Has(fsnotify.Create) {
		return
	}
	if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
		if err := d.addTree(ev.Name); err != nil {
			d.log.Warn("cannot watch new bundle subdirectory", "dir", ev.Name, "err", err)
		}
	}
}
