"""Score a whole cohort file with Ray Data and write predictions and rejects.

How the work is spread over a Ray cluster, and why:

- The driver resolves the model URI to one registered version, downloads
  its ONNX graph from MLflow and puts the bytes in Ray's object store. The
  scoring actors read the graph from there, so workers on other nodes need
  neither MLflow nor the driver's disk.
- The driver reads the input file, which only its own machine has to see,
  and puts it in the object store in blocks of ``batch_size`` rows. Ray
  Data's own file readers are not used. In Ray 2.60 they read a plain path
  in tasks on any node, so every node would need the file at the same
  path. Their ``local://`` scheme pins reads and writes to the driver's
  node, but Ray 2.60 marks it deprecated and rejects it under Ray Client
  (``ray://``).
- ``map_batches`` runs ``CohortBatchScorer`` on a pool of actors with one
  CPU and one ONNX Runtime thread each, on whichever nodes have CPUs free.
- The driver streams the scored blocks back with ``iter_batches`` and
  writes them to ``predictions.parquet`` and ``rejects.parquet`` in the
  output folder. Each file appears under its final name only after the
  last row is written, so a failed run never leaves a complete-looking file.

Rows come out in the order that blocks finish, not in the input order.
"""

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import mlflow
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
import ray.data
from mlflow.tracking import MlflowClient

from ltv.schema import ID_FIELD
from ltv.settings import Settings, get_settings
from scoring.batch import (
    MODEL_VERSION,
    PREDICTED,
    REASON,
    ROW,
    CohortBatchScorer,
    scored_schema,
)
from scoring.cohort_file import CohortFile, MalformedLine, open_cohort
from serve.scorer import resolve_version

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 10_000
# Rows per batch that the driver takes from Ray Data, and so per Parquet
# row group of the outputs.
OUTPUT_BATCH_ROWS = 100_000
PREDICTIONS_FILE = "predictions.parquet"
REJECTS_FILE = "rejects.parquet"


class OutputExistsError(FileExistsError):
    """An output file exists and overwriting was not requested."""


@dataclass(frozen=True)
class RegisteredGraph:
    """The ONNX graph of one registered model version."""

    name: str
    version: str
    graph: bytes

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class CohortSummary:
    """Row counts, output files and scoring time of one run."""

    input_path: Path
    model_uri: str
    model_version: str
    scored_rows: int
    rejected_rows: int
    seconds: float
    predictions_path: Path
    rejects_path: Path

    @property
    def input_rows(self) -> int:
        return self.scored_rows + self.rejected_rows

    @property
    def rows_per_second(self) -> float:
        return self.input_rows / self.seconds if self.seconds > 0 else 0.0


def fetch_graph(settings: Settings, model_uri: str) -> RegisteredGraph:
    """Resolve ``model_uri`` to a version and download its ONNX graph."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    name, version = resolve_version(MlflowClient(), model_uri)
    with tempfile.TemporaryDirectory(prefix="scoring-model-") as folder:
        local = Path(
            mlflow.artifacts.download_artifacts(
                f"models:/{name}/{version}", dst_path=folder
            )
        )
        graph = local / "model.onnx" if local.is_dir() else local
        return RegisteredGraph(name, version, graph.read_bytes())


def start_ray(address: str) -> None:
    """Connect to the Ray cluster at ``address``, or start a private one.

    ``local`` always starts a new single-node cluster on 127.0.0.1, even when
    ``RAY_ADDRESS`` is set or another cluster runs on this machine.
    """
    # NOTE: a ray:// (Ray Client) address goes to ray.init unchanged and is
    # untested.
    if address == "local":
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1")
    else:
        ray.init(address=address)


def score_cohort(
    input_path: Path,
    output_dir: Path,
    model_uri: str | None = None,
    settings: Settings | None = None,
    id_column: str = ID_FIELD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    overwrite: bool = False,
    address: str = "local",
) -> CohortSummary:
    """Score every row of ``input_path`` and write Parquet files to ``output_dir``.

    ``model_uri`` defaults to the champion alias of ``settings``. ``workers``
    is the number of scoring actors, by default one per CPU of the cluster.
    Ray is started at ``address`` unless this process is already connected.
    Raises ``CohortFileError``, ``OutputExistsError`` or
    ``ModelNotFoundError`` before any scoring starts.
    """
    settings = settings or get_settings()
    cohort = open_cohort(Path(input_path), id_column)
    outputs = CohortOutputs(Path(output_dir), cohort, overwrite)
    model = fetch_graph(settings, model_uri or settings.champion_uri)
    logger.info("scoring %s with %s", cohort.path, model.uri)

    if not ray.is_initialized():
        start_ray(address)
    ray.data.DataContext.get_current().enable_progress_bars = True
    started = time.perf_counter()

    malformed: list[MalformedLine] = []
    # NOTE: every block is put before scoring starts, so the whole input sits
    # in the object store and a file larger than it spills to the disk.
    blocks = [ray.put(table) for table in cohort.tables(batch_size, malformed)]
    logger.info(
        "read %s into %d blocks in %.1f s",
        cohort.path,
        len(blocks),
        time.perf_counter() - started,
    )
    with outputs:
        outputs.write_malformed(malformed)
        if blocks:
            _score_blocks(blocks, cohort, model, outputs, batch_size, workers)
    seconds = time.perf_counter() - started

    return CohortSummary(
        input_path=cohort.path,
        model_uri=model.uri,
        model_version=model.version,
        scored_rows=outputs.scored_rows,
        rejected_rows=outputs.rejected_rows,
        seconds=seconds,
        predictions_path=outputs.predictions_path,
        rejects_path=outputs.rejects_path,
    )


def _score_blocks(
    blocks: list[ray.ObjectRef],
    cohort: CohortFile,
    model: RegisteredGraph,
    outputs: "CohortOutputs",
    batch_size: int,
    workers: int | None,
) -> None:
    actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    scored = ray.data.from_arrow_refs(blocks).map_batches(
        CohortBatchScorer,
        fn_constructor_kwargs={
            "graph": ray.put(model.graph),
            "model_name": model.name,
            "model_version": model.version,
            "id_column": cohort.id_column,
            "id_type": cohort.id_type,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
    )
    for batch in scored.iter_batches(
        batch_size=OUTPUT_BATCH_ROWS, batch_format="pyarrow"
    ):
        outputs.write(batch)


class CohortOutputs:
    """The predictions and rejects Parquet files of one run.

    Rows go to hidden ``.partial`` files first, which are renamed to their
    final names when the run closes without an error.
    """

    def __init__(self, folder: Path, cohort: CohortFile, overwrite: bool):
        self.folder = folder.expanduser().resolve()
        self.predictions_path = self.folder / PREDICTIONS_FILE
        self.rejects_path = self.folder / REJECTS_FILE
        if not overwrite:
            for path in (self.predictions_path, self.rejects_path):
                if path.exists():
                    raise OutputExistsError(
                        f"{path} already exists; pass --overwrite to replace it"
                    )
        self.id_column = cohort.id_column
        schema = scored_schema(cohort.id_column, cohort.id_type)
        self.predictions_schema = pa.schema(
            [
                schema.field(cohort.id_column),
                schema.field(PREDICTED),
                schema.field(MODEL_VERSION),
            ]
        )
        self.rejects_schema = pa.schema(
            [schema.field(cohort.id_column), schema.field(REASON), schema.field(ROW)]
        )
        self.scored_rows = 0
        self.rejected_rows = 0

    def __enter__(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._predictions = pq.ParquetWriter(
            self._partial(self.predictions_path), self.predictions_schema
        )
        self._rejects = pq.ParquetWriter(
            self._partial(self.rejects_path), self.rejects_schema
        )
        return self

    def write(self, batch: pa.Table) -> None:
        rejected = pc.is_valid(batch.column(REASON))
        predictions = batch.filter(pc.invert(rejected))
        rejects = batch.filter(rejected)
        if predictions.num_rows:
            names = self.predictions_schema.names
            self._predictions.write_table(predictions.select(names))
            self.scored_rows += predictions.num_rows
        if rejects.num_rows:
            self._rejects.write_table(rejects.select(self.rejects_schema.names))
            self.rejected_rows += rejects.num_rows

    def write_malformed(self, lines: list[MalformedLine]) -> None:
        """Add CSV lines that could not be split into fields to the rejects."""
        if not lines:
            return
        rejects = pa.table(
            {
                self.id_column: pa.nulls(len(lines), self.rejects_schema.field(0).type),
                REASON: [line.reason for line in lines],
                ROW: [line.text for line in lines],
            },
            schema=self.rejects_schema,
        )
        self._rejects.write_table(rejects)
        self.rejected_rows += len(lines)

    def __exit__(self, error_type, error, traceback) -> None:
        self._predictions.close()
        self._rejects.close()
        for path in (self.predictions_path, self.rejects_path):
            partial = self._partial(path)
            if error_type is None:
                partial.replace(path)
            else:
                partial.unlink(missing_ok=True)

    @staticmethod
    def _partial(path: Path) -> Path:
        return path.with_name(f".{path.name}.partial")
