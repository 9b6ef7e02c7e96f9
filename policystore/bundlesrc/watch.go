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
	d := &DirWatcher{root: filepath.Clean(root), cooldown: cooldown, log: log, w: w}
	if err := d.addTree(d.root); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	// The root may be a symlink that an operator swaps to a new directory
	// in one rename; that rename happens in the parent, so watch it too.
	if err := w.Add(filepath.Dir(d.root)); err != nil {
		log.Warn("cannot watch the bundle directory's parent: a swapped symlink will not be noticed", "dir", filepath.Dir(d.root), "err", err)
	}
	return d, nil
}

// addTree watches dir and every directory below it; a symlinked dir is
// watched at its target.
func (d *DirWatcher) addTree(dir string) error {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	return filepath.WalkDir(resolved, func(p string, e fs.DirEntry, err error) error {
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
			if d.relevant(ev) {
				timer.Reset(d.cooldown)
			}
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

// relevant reports whether ev changes the bundle, and follows the change:
// a directory created under the root (a tests/ directory added later) is
// watched too, and so is the new target of a swapped root symlink. Events
// for the parent's other entries are not the bundle's.
func (d *DirWatcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if filepath.Dir(name) == filepath.Dir(d.root) && name != d.root && d.root != filepath.Dir(d.root) {
		return false
	}
	if !ev.Has(fsnotify.Create) {
		return true
	}
	if info, err := os.Stat(name); err == nil && info.IsDir() {
		if err := d.addTree(name); err != nil {
			d.log.Warn("cannot watch new bundle subdirectory", "dir", name, "err", err)
		}
	}
	return true
}
