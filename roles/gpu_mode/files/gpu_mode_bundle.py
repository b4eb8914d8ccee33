# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pack what the node's ``gpu-mode`` command runs into one reproducible archive, on the controller.

The archive holds the collection's ``plugins/module_utils`` (as ``ansible_collections/baremetal/gpu/plugins/
module_utils``, the import path the code uses) and the controller's ``ansible.module_utils``, the part of
Ansible the collection's code imports, shipped the way Ansible ships it to every target inside a module (with
the same two-line package stubs for ``ansible`` and ``ansible.module_utils``). Python files only: no byte code,
no caches. The same sources give a byte-identical archive, so an unchanged collection changes nothing on the
nodes, and a changed one replaces the whole tree (no stale file survives).

    gpu_mode_bundle.py --collection-module-utils DIR --dest FILE [--check]

With ``--directory DIR`` instead, it packs the files of DIR (flat, e.g. a wheel directory), so that one file,
not one per wheel, travels to each node and is compared there on later runs.

prints one JSON line: {"path", "sha256", "changed", "files"}. Runs with the Python that runs Ansible.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

PREFIX = "ansible_collections/baremetal/gpu/plugins/module_utils"
PACKAGE_STUB = b"from pkgutil import extend_path\n__path__ = extend_path(__path__, __name__)\n"


def python_files(top, arcroot):
    """[(arcname, path)] of every .py file under ``top``, sorted, caches left out."""
    out = []
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                out.append((arcroot + "/" + os.path.relpath(path, top).replace(os.sep, "/"), path))
    return out


def members(collection_module_utils):
    """{arcname: bytes} of the bundle."""
    import ansible
    import ansible.module_utils

    content = {}
    for arcname, path in python_files(collection_module_utils, PREFIX):
        with open(path, "rb") as handle:
            content[arcname] = handle.read()
    for arcname, path in python_files(os.path.dirname(ansible.module_utils.__file__), "ansible/module_utils"):
        if arcname != "ansible/module_utils/__init__.py":
            with open(path, "rb") as handle:
                content[arcname] = handle.read()
    content["ansible/__init__.py"] = PACKAGE_STUB + ('__version__ = "%s"\n' % ansible.__version__).encode()
    content["ansible/module_utils/__init__.py"] = PACKAGE_STUB
    return content


def directory_files(top):
    """{name: bytes} of the regular files directly in ``top`` (no sub-directories, no hidden files)."""
    content = {}
    for name in sorted(os.listdir(top)):
        path = os.path.join(top, name)
        if not name.startswith(".") and os.path.isfile(path):
            with open(path, "rb") as handle:
                content[name] = handle.read()
    return content


def archive(content):
    """A gzip'd tar of ``content``, byte-identical for identical content (sorted, no times, no owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted(set(parent for name in content for parent in _parents(name))):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(content):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(content[name]))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as handle:
        handle.write(raw.getvalue())
    return packed.getvalue()


def _parents(name):
    parts = name.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--collection-module-utils", help="the collection's plugins/module_utils")
    source.add_argument("--directory", help="a directory whose files to pack (flat), e.g. a wheel directory")
    parser.add_argument("--dest", required=True, help="the archive to write")
    parser.add_argument("--check", action="store_true", help="say whether it would change, write nothing")
    args = parser.parse_args(argv)
    if args.directory is not None:
        if not os.path.isdir(args.directory):
            parser.error("%s is not a directory" % args.directory)
        content = directory_files(args.directory)
        if not content:
            parser.error("%s holds no file to pack" % args.directory)
    elif not os.path.isfile(os.path.join(args.collection_module_utils, "gpu_mode", "cli.py")):
        parser.error("%s is not the collection's plugins/module_utils (no gpu_mode/cli.py)" % args.collection_module_utils)
    else:
        content = members(args.collection_module_utils)
    data = archive(content)
    try:
        with open(args.dest, "rb") as handle:
            changed = handle.read() != data
    except (IOError, OSError):
        changed = True
    if changed and not args.check:
        os.makedirs(os.path.dirname(os.path.abspath(args.dest)), exist_ok=True)
        tmp = args.dest + ".tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, args.dest)
    print(json.dumps({"path": os.path.abspath(args.dest), "sha256": hashlib.sha256(data).hexdigest(),
                      "changed": changed, "files": len(content)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
