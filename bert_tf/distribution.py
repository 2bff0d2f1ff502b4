"""Where and how a run computes: seeds, tf.distribute strategies, the precision policy, device reporting."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import zlib
from typing import Dict, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from bert_tf.config import AMP_DTYPES, DISTRIBUTIONS  # noqa: F401  (the choices, defined with the flags)
from bert_tf.errors import InputError



def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for `--distribution` (auto: mirrored with >1 GPU, else one device)."""
    if name not in DISTRIBUTIONS:
        raise InputError(f"--distribution={name}: expected one of {', '.join(DISTRIBUTIONS)}")
    if name == "multi_worker":
        # Collectives use CommunicationImplementation.AUTO: NCCL between GPUs, RING over gRPC otherwise.
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=_cluster_resolver())
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy(None if gpus else _local_cpus())
    device = gpus[0].name if gpus else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)


# Launcher variables: (rank, size, local rank, local size) of Open MPI's mpiexec/mpirun, then MPICH's/Intel MPI's Hydra.
MPI_ENVIRONMENTS = (
    ("Open MPI", ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                  "OMPI_COMM_WORLD_LOCAL_SIZE")),
    ("MPICH/Hydra", ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS")),
)
# Where the ports of a one-node MPI launch (each rank r listens on base + r) and of an srun step (each task of a
# node on base + its local index) start unless BERT_TF_MPI_PORT says: the base taken from the launch's job id, so
# that two launches on one node rarely collide.
MPI_PORT_RANGE = (20000, 40000)
MPI_JOB_VARIABLES = ("BERT_TF_MPI_PORT", "OMPI_MCA_orte_hnp_uri", "OMPI_MCA_ess_base_jobid", "PMIX_NAMESPACE",
                     "PMI_ID", "SLURM_JOB_ID")


@dataclasses.dataclass(frozen=True)
class MpiLaunch:
    """This process's place in an MPI launch (mpiexec/mpirun), read from the launcher's environment."""

    launcher: str
    rank: int
    size: int
    local_rank: int
    local_size: int


def mpi_launch(environ: Optional[Mapping[str, str]] = None) -> Optional[MpiLaunch]:
    """The MPI launch this process belongs to, or None when it was not started by mpiexec/mpirun."""
    environ = os.environ if environ is None else environ
    for launcher, names in MPI_ENVIRONMENTS:
        if names[0] in environ and names[1] in environ:
            try:
                rank, size = int(environ[names[0]]), int(environ[names[1]])
                local_rank = int(environ.get(names[2], rank))
                local_size = int(environ.get(names[3], size))
            except ValueError:
                raise InputError(f"{launcher} launch variables are not whole numbers: "
                                 + ", ".join(f"{n}={environ.get(n)}" for n in names)) from None
            return MpiLaunch(launcher, rank, size, local_rank, local_size)
    return None


def mpi_base_port(environ: Mapping[str, str]) -> int:
    """The first port of a one-node MPI launch or of an srun step's tasks on a node: BERT_TF_MPI_PORT, else derived
    from the launch's job id (the same in every rank and task)."""
    if environ.get("BERT_TF_MPI_PORT"):
        try:
            return int(environ["BERT_TF_MPI_PORT"])
        except ValueError:
            raise InputError(f"BERT_TF_MPI_PORT={environ['BERT_TF_MPI_PORT']}: expected a port number") from None
    job = next((environ[name] for name in MPI_JOB_VARIABLES if environ.get(name)), "")
    low, high = MPI_PORT_RANGE
    return low + zlib.crc32(job.encode("utf-8")) % (high - low)


def horovod_tf_config(launch: MpiLaunch, environ: Mapping[str, str]) -> str:
    """TF_CONFIG for one rank of a one-node MPI launch: every rank a worker on 127.0.0.1, ports base + rank.
    InputError for a launch over several nodes (not supported: one task per node under srun is)."""
    if launch.local_size != launch.size:
        raise InputError(f"--horovod under {launch.launcher} across nodes ({launch.size} ranks, {launch.local_size} "
                         "on this node) is not supported: launch one task per node with `srun --nodes=N "
                         "--ntasks-per-node=1 python ... --distribution=multi_worker` (global batch) instead")
    base = mpi_base_port(environ)
    workers = [f"127.0.0.1:{base + r}" for r in range(launch.size)]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": launch.rank}})


def apply_horovod_launch(horovod: bool, distribution: str, environ: Optional[Mapping[str, str]] = None,
                         ) -> Tuple[str, int]:
    """With --horovod, turn an MPI launch into a tf.distribute multi-worker run (TF_CONFIG set for this rank);
    returns (the distribution to use, the number of ranks: 1 outside MPI, as Horovod with one rank)."""
    environ = os.environ if environ is None else environ
    launch = mpi_launch(environ) if horovod else None
    if launch is None or launch.size == 1:
        return ("one_device" if horovod and distribution == "auto" else distribution), 1
    if distribution not in ("auto", "multi_worker"):
        raise InputError(f"--horovod under {launch.launcher} makes every rank a worker of a multi-worker run; "
                         f"--distribution={distribution} contradicts it (leave it out)")
    if environ.get("TF_CONFIG"):
        raise InputError(f"--horovod under {launch.launcher} builds the cluster itself; TF_CONFIG is set too "
                         "(unset it, or drop --horovod and launch without mpiexec)")
    os.environ["TF_CONFIG"] = horovod_tf_config(launch, environ)
    os.environ[LOCAL_RANK_VARIABLE] = str(launch.local_rank)
    return "multi_worker", launch.size


LOCAL_RANK_VARIABLE = "BERT_TF_LOCAL_RANK"  # set by apply_horovod_launch: the GPU this rank is pinned to


def horovod_batch(horovod: bool, distribution: str, per_rank_batch: int, batch_name: str) -> Tuple[str, int]:
    """--horovod as Horovod meant it: under mpiexec/mpirun every rank a multi-worker worker, alone one process on
    one device, the batch per rank. Returns (the distribution to use, the global batch: per-rank batch x ranks) and
    prints what it did (`batch_name`: the job's batch setting, for the message); without --horovod the settings as
    they are."""
    if not horovod:
        return distribution, per_rank_batch
    distribution, ranks = apply_horovod_launch(True, distribution)
    where = f"{ranks} MPI ranks" if ranks > 1 else "no MPI launch: one process"
    print(f"--horovod: {where}, --distribution={distribution}; --{batch_name}={per_rank_batch} is per rank "
          f"(as Horovod's): global batch {per_rank_batch * ranks}", flush=True)
    return distribution, per_rank_batch * ranks


def pin_local_gpu() -> Optional[str]:
    """Under an MPI launch (apply_horovod_launch), make only the GPU of this rank's local rank visible (as
    Horovod's `visible_device_list = local_rank`); returns its name, None without GPUs or a launch."""
    if LOCAL_RANK_VARIABLE not in os.environ:
        return None
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    local_rank = int(os.environ[LOCAL_RANK_VARIABLE])
    if local_rank >= len(gpus):
        raise InputError(f"rank with local rank {local_rank} has no GPU of its own: {len(gpus)} visible on "
                         "this node (start at most one rank per GPU)")
    tf.config.set_visible_devices(gpus[local_rank], "GPU")
    return gpus[local_rank].name


def untuned_options() -> tf.data.Options:
    """tf.data options with autotuning off (see untune_device_pipelines)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def untune_device_pipelines() -> bool:
    """Turn tf.data autotuning off in the per-device pipelines of tf.distribute's multi-device iterator.

    With several replicas (or MultiWorkerMirroredStrategy), `experimental_distribute_dataset` feeds
    each device through a small pipeline of its own (a generator and a fixed prefetch) that TF builds
    with default options, so it autotunes although there is nothing to tune. In TF 2.21 deleting such
    an iterator waits until the autotuning thread next wakes up, on a period that doubles from 10 ms
    up to a minute: on a mirrored run over two devices, 7 passes of 3 s out of 10 lost 2.2 s more at
    their end, and a pass of 20 s lost 21 s (bench/iterator_teardown.py), at every epoch end,
    validation and prediction. Our own pipelines turn autotuning off (Trainer.distribute); this does
    the same for the per-device ones by wrapping TF's private `_create_device_dataset`. True when that
    is in place (False, and nothing changed, where a TF version lacks the function); a per-device
    pipeline that cannot take the options is left as TF built it.
    """
    from tensorflow.python.data.ops import multi_device_iterator_ops as device_iterators

    create = getattr(device_iterators, "_create_device_dataset", None)
    if create is None:
        return False
    if getattr(create, "untuned_by_bert_tf", False):
        return True

    def create_untuned(*args, **kwargs):
        dataset = create(*args, **kwargs)
        try:
            return dataset.with_options(untuned_options())
        except (tf.errors.OpError, TypeError, ValueError):  # a device or TF version it does not suit
            return dataset

    create_untuned.untuned_by_bert_tf = True
    device_iterators._create_device_dataset = create_untuned
    return True


def _local_cpus() -> list:
    """The logical CPU devices (several only where they were configured, e.g. to test mirroring)."""
    return [device.name for device in tf.config.list_logical_devices("CPU")]


@dataclasses.dataclass(frozen=True)
class Launch:
    """Who started this process's workers: "mpi" (mpiexec/mpirun ranks: --horovod builds TF_CONFIG from them),
    "slurm" (an srun step of several tasks), "tf_config" (TF_CONFIG set by hand), or "none"; and why."""

    kind: str
    why: str


def recognise_launch(environ: Optional[Mapping[str, str]] = None) -> Launch:
    """The launcher of a multi-worker run. MPI rank variables win over SLURM's: mpiexec inside an sbatch
    allocation (the published production launch) sees SLURM_PROCID=0 and the batch script's SLURM_NTASKS in every
    rank, and no step variables. SLURM's own cluster is used only inside an srun step of several tasks."""
    environ = os.environ if environ is None else environ
    launch = mpi_launch(environ)
    if launch is not None and launch.size > 1:
        return Launch("mpi", f"{launch.launcher} rank variables: rank {launch.rank} of {launch.size} (they win over "
                             "SLURM's)")
    step_tasks = environ.get("SLURM_STEP_NUM_TASKS")
    if "SLURM_JOB_ID" in environ and "SLURM_STEP_ID" in environ and step_tasks and int(step_tasks) > 1:
        return Launch("slurm", f"srun step {environ['SLURM_JOB_ID']}.{environ['SLURM_STEP_ID']}: task "
                               f"{environ.get('SLURM_PROCID', '?')} of {step_tasks}")
    if environ.get("TF_CONFIG"):
        return Launch("tf_config", "TF_CONFIG")
    if "SLURM_JOB_ID" in environ and int(environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return Launch("none", f"a SLURM batch script of {environ['SLURM_NTASKS']} tasks outside any srun step")
    return Launch("none", "no launcher: one process")


def _cluster_resolver() -> tf.distribute.cluster_resolver.ClusterResolver:
    """The cluster of an srun step of several tasks, else of a valid TF_CONFIG (set by --horovod under mpiexec, or
    by hand); InputError when there is none."""
    launch = recognise_launch()
    if launch.kind == "slurm":
        # Ports from the job id (not TensorFlow's fixed 8888): two multi-worker jobs sharing a node do not collide.
        return tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=mpi_base_port(os.environ),
                                                                   **slurm_gpu_split(os.environ))
    if not os.environ.get("TF_CONFIG"):
        where = {"mpi": f" (mpiexec/mpirun ranks: add --horovod to make each rank a worker; {launch.why})",
                 "none": f" ({launch.why}: start the tasks with srun)" if "SLURM" in launch.why else ""}
        raise InputError("--distribution=multi_worker needs a SLURM allocation with several tasks or TF_CONFIG "
                         "(JSON: {\"cluster\": {\"worker\": [\"host:port\", ...]}, "
                         "\"task\": {\"type\": \"worker\", \"index\": i}})" + where.get(launch.kind, ""))
    _check_tf_config(os.environ["TF_CONFIG"])
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def slurm_gpu_split(environ: Mapping[str, str]) -> Dict[str, object]:
    """SlurmClusterResolver's GPU settings: its own where the node has GPUs (it counts them and gives each task its
    share); on a node without (CUDA_VISIBLE_DEVICES empty, or unset and no nvidia-smi) one notional slot per task and
    CUDA_VISIBLE_DEVICES left alone, where the resolver would fail running nvidia-smi or splitting 0 GPUs."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None and shutil.which("nvidia-smi", path=environ.get("PATH")):
        return {}
    if visible and any(device.strip() for device in visible.split(",")):
        return {}
    tasks = int(environ.get("SLURM_STEP_NUM_TASKS") or 1)
    return {"gpus_per_node": tasks, "gpus_per_task": 1, "auto_set_gpu": False}


def _check_tf_config(text: str) -> None:
    """Reject a TF_CONFIG that is not JSON or lacks the cluster or this task's place in it."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"TF_CONFIG is not valid JSON ({e})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not any(cluster.get(kind) for kind in ("chief", "worker")):
        raise InputError("TF_CONFIG has no cluster with \"worker\" (or \"chief\") addresses")
    if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int):
        raise InputError("TF_CONFIG has no \"task\" ({\"type\": ..., \"index\": ...}) naming a task of its cluster")
    if not 0 <= task["index"] < len(cluster[task["type"]]):
        raise InputError(f"TF_CONFIG task index {task['index']} is outside its {len(cluster[task['type']])} "
                         f"{task['type']} address(es)")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes outputs (always true outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and not _has_chief(resolver))


def chief_by_environment(distribution: str) -> bool:
    """Whether this process will be the chief, read from TF_CONFIG / SLURM before any strategy exists."""
    if distribution != "multi_worker":
        return True
    if recognise_launch().kind == "slurm":
        return os.environ.get("SLURM_PROCID", "0") == "0"
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "{}"))
        task = config.get("task", {})
        kinds = config.get("cluster", {})
    except (ValueError, AttributeError):
        return True
    if "chief" in kinds:
        return task.get("type") == "chief"
    return task.get("type") in (None, "worker") and int(task.get("index", 0)) == 0


def _has_chief(resolver) -> bool:
    try:
        return "chief" in resolver.cluster_spec().as_dict()
    except (ValueError, json.JSONDecodeError):
        return False


_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bfloat16 arithmetic


def cpu_bf16_support(cpuinfo_path: str = "/proc/cpuinfo") -> Optional[str]:
    """The CPU's native bfloat16 instruction set ("amx_bf16" or "avx512_bf16"), or None (also off Linux)."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[-1].split())
                    return next((flag for flag in _CPU_BF16_FLAGS if flag in present), None)
    except OSError:
        pass
    return None


def _gpu_compute_capability(gpu) -> Tuple[int, int]:
    """(major, minor) CUDA compute capability of a physical GPU; (0, 0) when TensorFlow cannot say."""
    try:
        return tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
    except (ValueError, RuntimeError):
        return (0, 0)


def choose_precision(use_amp: bool, amp_dtype: str, gpu_capabilities: Sequence[Tuple[int, int]],
                     cpu_bf16: Optional[str]) -> Tuple[str, str, bool]:
    """(Keras policy, what was used in words, whether the loss must be scaled) for the given hardware.

    --use_amp with amp_dtype auto: float16 with loss scaling on GPUs; bfloat16 on a CPU with native
    bfloat16 (AMX or AVX512-BF16, several times float32's matmul rate); float32 on other CPUs. A
    dtype the hardware cannot run well falls back, and the words say why.
    """
    if amp_dtype not in AMP_DTYPES:
        raise InputError(f"--amp_dtype={amp_dtype}: expected one of {', '.join(AMP_DTYPES)}")
    if not use_amp:
        return "float32", "float32", False
    if gpu_capabilities:
        oldest = min(gpu_capabilities)
        if amp_dtype == "bfloat16" and oldest < (8, 0):
            return ("mixed_float16", f"mixed_float16 with loss scaling (--amp_dtype=bfloat16 needs compute "
                    f"capability 8.0+, a GPU here has {oldest[0]}.{oldest[1]})", True)
        if amp_dtype == "bfloat16":
            return "mixed_bfloat16", "mixed_bfloat16 (GPU)", False
        return "mixed_float16", "mixed_float16 with loss scaling (GPU)", True
    if amp_dtype == "float16":
        return "float32", "float32 (--amp_dtype=float16 needs a GPU; none is visible)", False
    if cpu_bf16 is None and amp_dtype == "auto":
        return "float32", "float32 (--use_amp: no GPU is visible and this CPU has no native bfloat16)", False
    if cpu_bf16 is None:
        return "mixed_bfloat16", "mixed_bfloat16 (CPU without native bfloat16: likely slower than float32)", False
    return "mixed_bfloat16", f"mixed_bfloat16 (CPU with {cpu_bf16.upper().replace('_', '-')})", False


def configure_precision(use_amp: bool, amp_dtype: str = "auto") -> Tuple[str, bool]:
    """Set the Keras dtype policy (see choose_precision); returns (what was used in words, loss scaling)."""
    gpus = tf.config.list_physical_devices("GPU") if use_amp else []  # probe the hardware only for --use_amp
    cpu_bf16 = cpu_bf16_support() if use_amp and not gpus else None
    policy, words, loss_scale = choose_precision(use_amp, amp_dtype, [_gpu_compute_capability(g) for g in gpus],
                                                 cpu_bf16)
    keras.mixed_precision.set_global_policy(policy)
    return words, loss_scale


def describe_devices(strategy: tf.distribute.Strategy) -> str:
    """A one-line summary of where training runs."""
    gpus = tf.config.list_physical_devices("GPU")
    kind = f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    name, where = type(strategy).__name__, ""
    resolver = getattr(strategy, "cluster_resolver", None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver is not None:
        role = "the chief" if is_chief(strategy) else "not the chief"
        name = "MultiWorkerMirroredStrategy"  # the class is CollectiveAllReduceStrategy
        where = (f" over {_num_tasks(resolver)} worker(s) (this is {resolver.task_type} {resolver.task_id}, {role}; "
                 f"launch: {recognise_launch().why})")
    return f"{name} with {strategy.num_replicas_in_sync} replica(s){where}; {kind} visible"


def _num_tasks(resolver: tf.distribute.cluster_resolver.ClusterResolver) -> int:
    """Training tasks (chief and workers) in the resolver's cluster."""
    try:
        spec = resolver.cluster_spec().as_dict()
    except (ValueError, json.JSONDecodeError):
        return 1
    return sum(len(spec.get(kind, ())) for kind in ("chief", "worker"))


class RunContext:
    """Where and how a run trains: strategy, precision policy, loss scaling, chief or not."""

    def __init__(self, strategy: tf.distribute.Strategy, precision: str, loss_scale: bool):
        self.strategy, self.precision, self.loss_scale = strategy, precision, loss_scale
        self.chief = is_chief(strategy)
        self.replicas = strategy.num_replicas_in_sync

    def describe_batch(self, global_batch: int) -> str:
        """How the global batch is split across replicas: rows per replica, uneven splits spelled out."""
        sizes = replica_batch_sizes(global_batch, self.replicas)
        if len(set(sizes)) == 1:
            return f"global {global_batch} = {self.replicas} replica(s) x {sizes[0]}"
        shown = "+".join(map(str, sizes)) if len(sizes) <= 8 else f"{sizes[0]}, ..., {sizes[-1]}"
        return f"global {global_batch} over {self.replicas} replica(s): up to {sizes[0]} per replica ({shown})"


def replica_batch_sizes(global_batch: int, replicas: int) -> list:
    """Rows each replica gets of a global batch: ceil(batch / replicas) in turn until the rows run out
    (tf.distribute's split of batches of unknown static size, as both scripts' datasets are)."""
    per = -(-global_batch // replicas)
    return [max(0, min(per, global_batch - i * per)) for i in range(replicas)]


def set_seeds(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras."""
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)


def setup_run(seed: int, use_amp: bool, distribution: str, deterministic: bool = False,
              amp_dtype: str = "auto") -> RunContext:
    """Seed everything, set the precision policy and create the strategy."""
    pin_local_gpu()  # first: before anything initialises the GPUs
    set_seeds(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    precision, loss_scale = configure_precision(use_amp, amp_dtype)
    return RunContext(make_strategy(distribution), precision, loss_scale)
