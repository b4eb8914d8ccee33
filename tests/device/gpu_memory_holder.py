"""Hold GPU memory with a real CUDA process, for the release-wait checks on a GPU machine.

    python3 gpu_memory_holder.py --gib 10 --ready /tmp/ready

Creates a CUDA context on GPU 0 through the driver API (libcuda.so.1 via ctypes: no toolkit, no torch),
allocates GIB GiB with cuMemAlloc, writes its pid to the --ready file, then:
  SIGUSR1  frees the allocation but keeps the CUDA context (what a sleeping vLLM keeps),
  SIGTERM  exits (the driver frees everything once the process is gone).
"""

import argparse
import ctypes
import os
import signal
import sys
import time


def check(result, what):
    if result != 0:
        sys.exit("%s failed with CUDA error %d" % (what, result))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, required=True)
    parser.add_argument("--ready", required=True)
    args = parser.parse_args()
    cuda = ctypes.CDLL("libcuda.so.1")
    check(cuda.cuInit(0), "cuInit")
    device = ctypes.c_int()
    check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
    context = ctypes.c_void_p()
    check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), device), "cuDevicePrimaryCtxRetain")
    check(cuda.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    pointer = ctypes.c_uint64()
    size = ctypes.c_size_t(int(args.gib * (1 << 30)))
    check(cuda.cuMemAlloc_v2(ctypes.byref(pointer), size), "cuMemAlloc")
    check(cuda.cuMemsetD8_v2(pointer, ctypes.c_ubyte(1), size), "cuMemsetD8")
    check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
    state = {"freed": False}

    def free(_signum, _frame):
        if not state["freed"]:
            check(cuda.cuMemFree_v2(pointer), "cuMemFree")
            check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
            state["freed"] = True
            print("freed at %.6f" % time.monotonic(), flush=True)

    signal.signal(signal.SIGUSR1, free)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(args.ready + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(args.ready + ".tmp", args.ready)
    print("holding %.1f GiB, pid %d" % (args.gib, os.getpid()), flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
