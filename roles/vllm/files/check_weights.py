# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Download a model's weights once into a cache and check that they are complete.

Runs as the ``weights`` init container of a vLLM Deployment (the vllm role ships it in a ConfigMap),
with the serving image's Python and its ``huggingface_hub``. Also usable by hand:

    python3 check_weights.py --repo Qwen/Qwen3-8B-AWQ --cache-dir /root/.cache/huggingface
    python3 check_weights.py --repo Qwen/Qwen3-ASR-1.7B --local-dir /models/Qwen3-ASR-1.7B --check-only

Complete means: ``config.json`` is present; every shard named by ``model.safetensors.index.json``
(or the single ``model.safetensors``) is present; each shard's size is exactly what its own
safetensors header says (8-byte header length + header + the end of the last tensor), so a truncated
download is caught without any network access. When something is missing or short, the snapshot is
downloaded again (``huggingface_hub`` resumes and replaces incomplete files) and checked once more.

Exit status: 0 complete, 1 incomplete after the download attempts, 2 usage or environment error.
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import struct
import sys
import time

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
MAX_HEADER = 100 * 1024 * 1024  # safetensors refuses headers above 100 MB


def shard_problem(path):
    """None when the safetensors file at ``path`` is as long as its header says, else the problem."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return "missing"
    if size < 8:
        return "truncated: %d bytes, not even a header length" % size
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > MAX_HEADER or 8 + header_len > size:
            return "truncated or corrupt: header of %d bytes in a file of %d bytes" % (header_len, size)
        try:
            header = json.loads(handle.read(header_len).decode("utf-8"))
        except ValueError as exc:
            return "corrupt header: %s" % exc
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not offsets or len(offsets) != 2:
            return "corrupt header: tensor %s has no data_offsets" % name
        end = max(end, int(offsets[1]))
    expected = 8 + header_len + end
    if size != expected:
        return "size %d bytes, its header says %d (%s)" % (size, expected, "truncated" if size < expected else "too long")
    return None


def check_dir(directory):
    """Problems of the model directory (a Hugging Face snapshot or a local copy); [] when complete."""
    problems = []
    if not directory or not os.path.isdir(directory):
        return ["%s: no such directory" % directory]
    if not os.path.isfile(os.path.join(directory, "config.json")):
        problems.append("config.json: missing")
    index_path = os.path.join(directory, INDEX)
    if os.path.isfile(index_path):
        try:
            with open(index_path) as handle:
                index = json.load(handle)
            shards = sorted(set((index.get("weight_map") or {}).values()))
        except (OSError, ValueError) as exc:
            return problems + ["%s: unreadable (%s)" % (INDEX, exc)]
        if not shards:
            problems.append("%s: lists no shards" % INDEX)
    elif os.path.exists(os.path.join(directory, SINGLE)):
        shards = [SINGLE]
    else:
        shards = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors"))
        if not shards:
            problems.append("no safetensors weights (%s or %s)" % (INDEX, SINGLE))
    for shard in shards:
        problem = shard_problem(os.path.join(directory, shard))
        if problem:
            problems.append("%s: %s" % (shard, problem))
    return problems


def snapshot_dir(cache_dir, repo, revision="main"):
    """The snapshot directory of ``repo`` in a Hugging Face cache (``HF_HOME``), or None if not there."""
    base = os.path.join(cache_dir, "hub", "models--" + repo.replace("/", "--"))
    ref = os.path.join(base, "refs", revision)
    commit = revision
    if os.path.isfile(ref):
        with open(ref) as handle:
            commit = handle.read().strip()
    path = os.path.join(base, "snapshots", commit)
    return path if os.path.isdir(path) else None


def download(repo, revision, cache_dir, local_dir):
    """Fetch (or complete) the snapshot with huggingface_hub; returns its directory."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise RuntimeError("huggingface_hub is not installed in this image: use an image that has it "
                           "(vllm/vllm-openai does) as the download image")
    kwargs = {"repo_id": repo, "revision": revision, "token": os.environ.get("HF_TOKEN") or None}
    if local_dir:
        kwargs["local_dir"] = local_dir
    else:
        kwargs["cache_dir"] = os.path.join(cache_dir, "hub")
    return snapshot_download(**kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--repo", required=True, help="Hugging Face repository id")
    parser.add_argument("--revision", default="main")
    parser.add_argument("--cache-dir", default=os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")))
    parser.add_argument("--local-dir", help="a plain directory holding the model instead of the hub cache")
    parser.add_argument("--check-only", action="store_true", help="check, never download")
    parser.add_argument("--attempts", type=int, default=3)
    args = parser.parse_args(argv)

    def where():
        return args.local_dir or snapshot_dir(args.cache_dir, args.repo, args.revision)

    problems = check_dir(where()) if where() else ["%s: not in the cache %s" % (args.repo, args.cache_dir)]
    attempt = 0
    while problems and not args.check_only and attempt < args.attempts:
        attempt += 1
        print("weights of %s incomplete (%s); download attempt %d" % (args.repo, "; ".join(problems), attempt),
              flush=True)
        started = time.time()
        try:
            download(args.repo, args.revision, args.cache_dir, args.local_dir)
        except RuntimeError as exc:
            print("error: %s" % exc, file=sys.stderr)
            return 2
        except Exception as exc:  # network, auth, disk: report and retry
            print("download failed: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
            continue
        print("downloaded in %.1f s" % (time.time() - started), flush=True)
        problems = check_dir(where()) if where() else ["%s: still not in the cache" % args.repo]
    if problems:
        print("weights of %s incomplete: %s" % (args.repo, "; ".join(problems)), file=sys.stderr)
        return 1
    print("weights of %s complete in %s" % (args.repo, where()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
