"""Which launcher started a multi-worker run, and which rank is the chief: MPI rank variables win over SLURM's
(mpiexec inside an sbatch allocation, the published production launch), SLURM's cluster only inside an srun step."""

from __future__ import annotations

import json

import pytest

# What a batch script of `sbatch --ntasks=2` and a task of its `srun` step see (SLURM 22.05; tests/test_slurm_real.py
# runs both launches on a real scheduler).
BATCH_SCRIPT = {"SLURM_JOB_ID": "41", "SLURM_NTASKS": "2", "SLURM_PROCID": "0"}
SRUN_STEP = {"SLURM_JOB_ID": "41", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"}


def open_mpi(rank: int, size: int = 2) -> dict:
    return {"OMPI_COMM_WORLD_RANK": str(rank), "OMPI_COMM_WORLD_SIZE": str(size),
            "OMPI_COMM_WORLD_LOCAL_RANK": str(rank), "OMPI_COMM_WORLD_LOCAL_SIZE": str(size)}


def hydra(rank: int, size: int = 2) -> dict:
    return {"PMI_RANK": str(rank), "PMI_SIZE": str(size), "MPI_LOCALRANKID": str(rank), "MPI_LOCALNRANKS": str(size)}


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith(("SLURM_", "OMPI_", "PMI_", "MPI_LOCAL")) or key in ("TF_CONFIG", "BERT_TF_LOCAL_RANK"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.mark.parametrize("ranks", [open_mpi, hydra], ids=["open_mpi", "mpich_hydra"])
def test_mpiexec_inside_an_sbatch_allocation_makes_exactly_one_chief(clean_env, ranks):
    """--horovod under mpiexec in a batch script: each rank a worker of the TF_CONFIG --horovod builds, rank 0 the
    only chief, although every rank reads SLURM_PROCID=0 and SLURM_NTASKS=2."""
    from bert_tf import distribution

    chiefs, configs = [], []
    for rank in (0, 1):
        for key, value in {**BATCH_SCRIPT, **ranks(rank), "BERT_TF_MPI_PORT": "23456"}.items():
            clean_env.setenv(key, value)
        clean_env.delenv("TF_CONFIG", raising=False)
        assert distribution.horovod_batch(True, "auto", 8, "train_batch_size") == ("multi_worker", 16)
        launch = distribution.recognise_launch()
        assert launch.kind == "mpi" and "win over SLURM's" in launch.why
        chiefs.append(distribution.chief_by_environment("multi_worker"))
        configs.append(json.loads(__import__("os").environ["TF_CONFIG"]))
    assert chiefs == [True, False]
    assert [c["task"]["index"] for c in configs] == [0, 1]
    assert configs[0]["cluster"] == configs[1]["cluster"] == {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]}


def test_the_cluster_resolver_of_an_mpi_launch_is_tf_config_not_slurm(clean_env):
    import tensorflow as tf

    from bert_tf import distribution

    for key, value in {**BATCH_SCRIPT, **open_mpi(1), "BERT_TF_MPI_PORT": "23456"}.items():
        clean_env.setenv(key, value)
    distribution.apply_horovod_launch(True, "auto")
    resolver = distribution._cluster_resolver()
    assert isinstance(resolver, tf.distribute.cluster_resolver.TFConfigClusterResolver)
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)


def test_srun_without_mpi_uses_slurm_and_its_procid(clean_env):
    from bert_tf import distribution

    for rank in ("0", "1"):
        for key, value in {**SRUN_STEP, "SLURM_PROCID": rank}.items():
            clean_env.setenv(key, value)
        assert distribution.recognise_launch().kind == "slurm"
        assert distribution.chief_by_environment("multi_worker") == (rank == "0")


def test_a_batch_script_without_a_step_is_not_a_slurm_cluster(clean_env):
    """sbatch --ntasks=2 running python directly (no srun, no mpiexec): one input error naming the fix, not
    TensorFlow's KeyError for SLURM_STEP_NUM_TASKS."""
    from bert_tf import distribution
    from bert_tf.errors import InputError

    for key, value in BATCH_SCRIPT.items():
        clean_env.setenv(key, value)
    launch = distribution.recognise_launch()
    assert launch.kind == "none" and "outside any srun step" in launch.why
    with pytest.raises(InputError, match="start the tasks with srun"):
        distribution._cluster_resolver()


def test_mpiexec_without_horovod_says_to_add_it(clean_env):
    from bert_tf import distribution
    from bert_tf.errors import InputError

    for key, value in {**BATCH_SCRIPT, **hydra(0)}.items():
        clean_env.setenv(key, value)
    with pytest.raises(InputError, match="add --horovod"):
        distribution._cluster_resolver()


def test_tf_config_by_hand_inside_an_allocation_wins_outside_a_step(clean_env):
    from bert_tf import distribution

    config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    for key, value in {**BATCH_SCRIPT, "TF_CONFIG": json.dumps(config)}.items():
        clean_env.setenv(key, value)
    assert distribution.recognise_launch().kind == "tf_config"
    assert distribution.chief_by_environment("multi_worker") is False


@pytest.mark.parametrize("cuda", [None, ""], ids=["no_nvidia_smi", "cuda_hidden"])
def test_slurm_cluster_on_a_node_without_gpus(clean_env, cuda):
    """Two srun tasks on a CPU-only node (no nvidia-smi, or CUDA_VISIBLE_DEVICES empty): the step's cluster is built
    (TensorFlow's resolver alone fails running nvidia-smi or splitting no GPUs between the tasks), on ports from
    BERT_TF_MPI_PORT, and CUDA_VISIBLE_DEVICES is left as it was."""
    import tensorflow as tf

    from bert_tf import distribution

    for key, value in {**SRUN_STEP, "SLURM_PROCID": "1", "SLURM_STEP_NODELIST": "localhost",
                       "SLURM_STEP_TASKS_PER_NODE": "2", "SLURM_NTASKS_PER_NODE": "2", "BERT_TF_MPI_PORT": "23456",
                       "PATH": "/nonexistent"}.items():
        clean_env.setenv(key, value)
    clean_env.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if cuda is not None:
        clean_env.setenv("CUDA_VISIBLE_DEVICES", cuda)
    resolver = distribution._cluster_resolver()
    assert isinstance(resolver, tf.distribute.cluster_resolver.SlurmClusterResolver)
    assert resolver.cluster_spec().as_dict() == {"worker": ["localhost:23456", "localhost:23457"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert __import__("os").environ.get("CUDA_VISIBLE_DEVICES") == cuda
