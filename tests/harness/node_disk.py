"""A simulated node whose filesystem, under given directories, is this machine's: what an Ansible role run with a
local connection wrote there is what the node's hostPath volumes show (for roles that put files on a node for
its pods, such as gpu_router). Everything else stays the simulator's in-memory node filesystem."""

import os
from collections.abc import MutableMapping


class _Files(MutableMapping):
    """Full path -> bytes: real files under ``roots`` (symbolic links followed, as a bind mount of a link's path
    shows its target), the simulator's own store elsewhere."""

    def __init__(self, store, roots):
        self.store = store
        self.roots = [os.path.normpath(r) for r in roots]

    def _real(self, path):
        return any(path == r or path.startswith(r + "/") for r in self.roots)

    def __getitem__(self, path):
        if self._real(path):
            if not os.path.isfile(path):
                raise KeyError(path)
            with open(path, "rb") as handle:
                return handle.read()
        return self.store[path]

    def __setitem__(self, path, value):
        if self._real(path):
            raise PermissionError("the simulator does not write the real directory %s" % path)
        self.store[path] = value

    def __delitem__(self, path):
        if self._real(path):
            raise PermissionError("the simulator does not delete in the real directory %s" % path)
        del self.store[path]

    def __contains__(self, path):
        return os.path.isfile(path) if self._real(path) else path in self.store

    def __iter__(self):
        yield from list(self.store)
        for root in self.roots:
            for base, _dirs, files in os.walk(root, followlinks=True):
                for name in files:
                    yield os.path.join(base, name)

    def __len__(self):
        return sum(1 for unused_path in self)


def share(host, roots):
    """Make the simulated node filesystem ``host`` (a kubelet HostFiles) show ``roots`` from this machine."""
    host.files = _Files(host.files, roots)
    is_dir = host.is_dir

    def real_is_dir(path):
        path = os.path.normpath(path)
        if host.files._real(path):  # pylint: disable=protected-access
            return os.path.isdir(path)
        return is_dir(path)

    host.is_dir = real_is_dir
    return host
