"""One hardware policy for every pipeline (fine-tuning, zero-shot, pretraining, prediction): the device, the
precision `auto` resolves to, torch's thread count, and how peak memory and the hardware are reported.

What each choice buys is measured by benchmarks/bench_training.py and benchmarks/bench_predict.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import resource

import torch

from .errors import UserError
from .log import logger

# Below this hidden size bf16 autocast on a CPU costs more in casts than its matmuls gain (tiny models, our
# backbones at their defaults); measured with benchmarks/bench_training.py on an avx512_bf16 CPU.
MIN_BF16_HIDDEN_SIZE = 256
# train.attn_implementation=null trains with eager attention on CPU up to this max_length (measured faster at 128);
# above it the model's default (sdpa), whose attention weights need less memory (set_training_attention).
EAGER_MAX_LENGTH = 128


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """avx512_bf16 or AMX: bf16 autocast measured 1.5-1.75x faster here on BERT-shaped training steps; on AVX2-only
    CPUs bf16 is emulated and ~100x slower than fp32."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def device() -> torch.device:
    """cuda when a GPU is visible, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_precision(requested: str, hidden_size: int | None = None) -> str:
    """`bf16`, `fp16` or `fp32` for a run that asked for `requested` (auto | bf16 | fp16 | fp32).

    auto: on a GPU bf16 where it is supported (Ampere or newer), else fp16 (Trainer scales the loss); on a CPU bf16
    where the CPU has native bf16 and the model is not tiny (`hidden_size` >= MIN_BF16_HIDDEN_SIZE, when given),
    else fp32. Raises UserError for fp16 without a GPU.
    """
    if requested == "fp16" and not torch.cuda.is_available():
        raise UserError("train.precision=fp16 needs a GPU; on a CPU use bf16 or fp32")
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    small = hidden_size is not None and hidden_size < MIN_BF16_HIDDEN_SIZE
    return "bf16" if cpu_has_fast_bf16() and not small else "fp32"


def set_training_attention(model: torch.nn.Module, requested: str | None, max_length: int) -> str | None:
    """Switch `model` (a transformers PreTrainedModel, or a wrapper holding one: its outermost) to the attention
    kernel it trains with: `requested` (transformers' attn_implementation names: eager, sdpa, ...), or for null eager
    where it defaults to sdpa on a CPU and texts are cut at `max_length` <= EAGER_MAX_LENGTH tokens, else its own.
    The choice is not saved with the model: loading the output folder picks the default again. Returns the
    implementation the model trains with (None for a model without transformers' choice of attention).

    Why eager on CPU: bf16 training steps of MiniLM-L6 on the default task (max_length 128) took 0.92x sdpa's time
    with dropout and 0.64x without (sdpa then runs its fused kernel, whose backward is slow on CPU), on the same
    batches (benchmarks/bench_training.py --profile, an avx512_bf16 AMD EPYC, one thread). Why not on long texts:
    eager keeps every layer's length x length attention weights; at max_length 512 a run peaked at 2,759 MB
    against sdpa's 2,298 (bench_training.py --memory's long-text run), and its speed there was not measured.
    Raises UserError for a kernel the model does not support.
    """
    from transformers import PreTrainedModel

    model = next((module for module in model.modules() if isinstance(module, PreTrainedModel)), None)
    if model is None:
        if requested:
            raise UserError(f"train.attn_implementation={requested}: the model is no transformers model with a "
                            "choice of attention; drop train.attn_implementation")
        return None
    current = getattr(model.config, "_attn_implementation", None)
    if requested is None:
        short = max_length <= EAGER_MAX_LENGTH
        requested = "eager" if current == "sdpa" and short and not torch.cuda.is_available() else None
    if requested is None or requested == current:
        return current
    try:
        model.set_attn_implementation(requested)
    except (ValueError, ImportError, AttributeError) as err:
        reason = str(err).splitlines()[0].split(". ")[0][:200]  # transformers' first sentence says why
        raise UserError(f"train.attn_implementation={requested}: {type(model).__name__} cannot use it ({reason}); "
                        "use eager (every transformers model has it) or null") from None
    return model.config._attn_implementation


def set_threads(requested: int | None) -> None:
    """torch's intra-op threads: `requested` if given, else torch's default, except under `accelerate launch` on a CPU.

    Without --cpu, accelerate starts every process with OMP_NUM_THREADS=1 (its --num_cpu_threads_per_process
    default), which ran the default recipe at half speed on 2 cores; there each process gets its share of the cores.
    """
    if requested:
        torch.set_num_threads(requested)
        return
    launched_by_accelerate = "ACCELERATE_MIXED_PRECISION" in os.environ
    share = len(os.sched_getaffinity(0)) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if launched_by_accelerate and not torch.cuda.is_available() and torch.get_num_threads() < share:
        logger.info(f"torch threads: {share} (accelerate launch set OMP_NUM_THREADS="
                    f"{os.environ.get('OMP_NUM_THREADS')}; train.threads=N picks another count)")
        torch.set_num_threads(share)


# glibc's mallopt parameters (malloc.h). When training ends they are set to where glibc's own adaptive thresholds
# settle once a block of 32 MB or more was freed (malloc.c: DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, trim at twice
# that): any mallopt call turns the adaptation off for good, so a threshold left at its 128 KiB start would map
# (and page-fault afresh) every block of 128 KiB or more for the rest of the process.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
ADAPTED_MMAP_THRESHOLD, ADAPTED_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 32 * 2**20, 64 * 2**20, 65536


@contextlib.contextmanager
def freed_memory_reused(enabled: bool = True, device: torch.device | str = "cpu"):
    """Within the block, glibc's malloc keeps freed blocks in the process heap for reuse, instead of unmapping each
    block of 32 MB or more (its mmap threshold) when freed and mapping it afresh, page by page, when it is allocated
    again: `mallopt(M_MMAP_MAX, 0)` and a 1 GiB `M_TRIM_THRESHOLD`. Afterwards blocks are mapped again, at the
    thresholds glibc's adaptive ones reach in a process that freed a large block (mmap 32 MiB, trim 64 MiB: after
    a mallopt they no longer adapt), and `malloc_trim(0)` returns the heap's free pages to the system.

    Why: a CPU training step frees and reallocates the same large tensors every step (MiniLM's dense 47 MB
    word-embedding gradient among them); with glibc's defaults each one costs fresh zeroed pages from the kernel:
    ~15,000 page faults per step of the default recipe, none with this once the heap has grown; whole epochs 1.27x
    faster on an AMD EPYC, peak memory at max_length 512 2.8 GB against 2.4 (benchmarks/bench_training.py, README;
    PyTorch's CPU performance guide makes the same point for jemalloc / TCMalloc). Masked-LM pretraining gains 1.5x;
    the default run's evaluation after training took 1.6x longer while the threshold stayed at 128 KiB (README's
    performance section). A no-op outside glibc (macOS, musl), when `enabled` is false, and when the tensors live on
    an accelerator (`device` other than the CPU: the host heap does not hold them).
    """
    libc = None
    if enabled and torch.device(device).type == "cpu" and platform.libc_ver()[0] == "glibc":
        with contextlib.suppress(OSError, AttributeError):  # no loadable libc.so.6: glibc's defaults stay
            loaded = ctypes.CDLL("libc.so.6")
            loaded.mallopt(M_MMAP_MAX, 0)
            loaded.mallopt(M_TRIM_THRESHOLD, 2**30)
            libc = loaded  # only once set: the block's end acts only where its start did
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
            libc.mallopt(M_MMAP_THRESHOLD, ADAPTED_MMAP_THRESHOLD)
            libc.mallopt(M_TRIM_THRESHOLD, ADAPTED_TRIM_THRESHOLD)
            libc.malloc_trim(0)


def peak_memory_mb() -> float:
    """Peak resident memory of this process (CPU) or peak allocated GPU memory, in MiB."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def hardware_description() -> str:
    """`N x GPU name`, or `CPU: model name, T threads` (from /proc/cpuinfo where there is one)."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} threads"
