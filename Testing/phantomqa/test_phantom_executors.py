"""The executors: in-process, process pool and a dask.distributed scheduler address."""

from __future__ import annotations

import pytest
from phantomqa_helpers import small_geometry

from PhantomQALib.acquisitions import Acquisition
from RadiologyAICommonLib.executors import InlineExecutor, open_executor
from PhantomQALib.study_phantom import make_study_phantom, preset_parameters
from PhantomQALib.study import DesignRef, SimulationParameters, StudyParameters, make_jobs, run_jobs
from RadiologyAICommonLib.errors import RadiologyAIError


def _square(x):
    return x * x


def _fail(x):
    raise RadiologyAIError(f"bad item {x}")


def test_inline_and_pool_executors():
    with open_executor(1) as executor:
        assert isinstance(executor, InlineExecutor)
        assert executor.submit(_square, 3).result() == 9
        with pytest.raises(RadiologyAIError, match="bad item 2"):
            executor.submit(_fail, 2).result()
    with open_executor(2) as executor:
        assert sorted(f.result() for f in [executor.submit(_square, i) for i in range(4)]) == [0, 1, 4, 9]
        with pytest.raises(RadiologyAIError, match="bad item 5"):  # user errors cross the process boundary intact
            executor.submit(_fail, 5).result()
    with pytest.raises(RadiologyAIError, match="at least 1"):
        with open_executor(0):
            pass


def test_jobs_run_on_a_dask_scheduler(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        acquisitions = [Acquisition(f"fbp_1mGy_rep{k}.nrrd", "fbp", 1.0, k) for k in (1, 2)]
        parameters = StudyParameters(scheduler=cluster.scheduler_address)
        jobs = make_jobs(
            acquisitions,
            DesignRef(phantom=make_study_phantom(preset_parameters("small"))),
            parameters,
            SimulationParameters(geometry=small_geometry()),
            analyse=False,
            write_dir=tmp_path,
        )
        results = run_jobs(jobs, parameters)
    assert [r.acquisition.repetition for r in results] == [1, 2]
    assert sorted(p.name for p in tmp_path.glob("*.nrrd")) == ["fbp_1mGy_rep1.nrrd", "fbp_1mGy_rep2.nrrd"]


def test_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("dask.distributed")
    with pytest.raises(RadiologyAIError, match="cannot connect to the dask scheduler"):
        with open_executor(scheduler="tcp://127.0.0.1:9", connect_timeout_s=2):
            pass
