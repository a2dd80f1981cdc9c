"""A learned ranker: gradient-boosted trees (LightGBM) over the features the live service logged, one copy served
by both backends (Vespa evaluates `lightgbm("ranker.json")` in the learned profile's second phase; the embedded
index and the contract server call LightGBM's own predict).

    ranker = train_ranker(features, labels, impression, time, names, RankerConfig("lambdarank"), model_version)
    ranker.save("newsrec-model/ranker")        # header.json, model.txt (LightGBM), lightgbm.json (Vespa's)
    Ranker.load("newsrec-model/ranker").predict(features)    # (rows, F) in header["features"] order

Training: the rows of the training days in time order (each impression's candidates with the features the service
saw at the impression's time; feed/replay.py logs them); the last day validates (early stopping), the days before
it train. `binary` learns P(click) (Vespa applies the sigmoid the dump names, as LightGBM's predict does);
`lambdarank` ranks the candidates of one impression (grouped by impression; raw scores).

The directory is self-describing: header.json holds the feature names and order, the objective and settings, the
SHA-256 of the training rows, the LightGBM version, the two-tower checkpoint's version whose features it read
(`model_version`), the validation metrics and the digests of both model files (checked at load).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from newsrec.pipeline.errors import NewsrecError

FORMAT = "newsrec-ranker-1"
HEADER_FILE, MODEL_FILE, VESPA_FILE = "header.json", "model.txt", "lightgbm.json"
OBJECTIVES = ("binary", "lambdarank")
DAY_SECONDS = 86_400


class RankerError(NewsrecError):
    """A ranker that cannot be trained or loaded (no rows, a torn or foreign directory, a file changed)."""


class RankerMismatchError(NewsrecError):
    """A ranker served over features it was not trained on (another two-tower model, other feature names)."""


@dataclass(frozen=True)
class RankerConfig:
    objective: str = "binary"  # OBJECTIVES
    num_leaves: int = 31
    learning_rate: float = 0.05
    rounds: int = 400  # at most; early stopping on the validation day picks the number
    early_stopping: int = 40
    min_data_in_leaf: int = 100
    seed: int = 0
    threads: int = 2


class Ranker:
    """A trained booster and its header (module docstring)."""

    def __init__(self, booster, header: dict):
        self.booster, self.header = booster, header

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.header["features"])

    @property
    def model_version(self) -> str:
        return self.header["model_version"]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(rows, F) -> (rows,) float64: P(click) for binary, the raw score for lambdarank (what Vespa computes)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.features):
            raise RankerMismatchError(f"the ranker reads {len(self.features)} features ({', '.join(self.features)}); "
                                      f"got an array of shape {features.shape}")
        if len(features) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(features, num_threads=1), dtype=np.float64)

    def require(self, features: tuple[str, ...], model_version: str | None, where: str) -> None:
        """Refuse serving this ranker over other features or another model's vectors (RankerMismatchError)."""
        if tuple(features) != self.features:
            raise RankerMismatchError(f"{where}: the ranker reads features {list(self.features)}, the service "
                                      f"computes {list(features)}: retrain it (`newsrec train-ranker`)")
        if model_version is not None and model_version != self.model_version:
            raise RankerMismatchError(f"{where}: the ranker was trained on the features of model {self.model_version}"
                                      f", the news were fed with model {model_version}: train a ranker on this "
                                      "model's replay, or feed this ranker's model")

    def vespa_json(self) -> dict:
        """LightGBM's dump_model(): the file Vespa's lightgbm(...) feature reads."""
        return self.booster.dump_model()

    def save(self, directory: str | Path) -> Path:
        """Write the three files (the model files first, the header naming their digests last, each atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        text = self.booster.model_to_string().encode()
        dump = json.dumps(self.vespa_json(), indent=1).encode()
        header = {**self.header, "files": {MODEL_FILE: _sha256(text), VESPA_FILE: _sha256(dump)}}
        for name, data in ((MODEL_FILE, text), (VESPA_FILE, dump), (HEADER_FILE, json.dumps(header, indent=1).encode())):
            _write_atomically(directory / name, data)
        self.header = header
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Ranker":
        """The ranker in `directory` (its three files, checked against the header's digests)."""
        directory = Path(directory)
        if not (directory / HEADER_FILE).is_file():
            raise RankerError(f"{directory}: no learned ranker (train one with `newsrec train-ranker`)")
        files = {name: (directory / name).read_bytes() for name in (HEADER_FILE, MODEL_FILE, VESPA_FILE)
                 if (directory / name).is_file()}
        return cls.from_files(files, str(directory))

    @classmethod
    def from_files(cls, files: dict[str, bytes], where: str) -> "Ranker":
        """The ranker of these file contents (HEADER_FILE, MODEL_FILE, VESPA_FILE), `where` naming them in errors."""
        import lightgbm

        try:
            header = json.loads(files[HEADER_FILE])
        except KeyError:
            raise RankerError(f"{where}: no {HEADER_FILE}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RankerError(f"{where}/{HEADER_FILE}: not a ranker header ({error})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise RankerError(f"{where}/{HEADER_FILE}: not a newsrec ranker (format {FORMAT} expected)")
        for name in (MODEL_FILE, VESPA_FILE):
            if name not in files:
                raise RankerError(f"{where}/{name}: missing (the ranker directory is incomplete)")
            if _sha256(files[name]) != header.get("files", {}).get(name):
                raise RankerError(f"{where}/{name}: its SHA-256 is not the one {HEADER_FILE} names (changed after "
                                  "training?)")
        booster = lightgbm.Booster(model_str=files[MODEL_FILE].decode())
        if tuple(booster.feature_name()) != tuple(header["features"]):
            raise RankerError(f"{where}/{MODEL_FILE}: its features {booster.feature_name()} are not the header's")
        return cls(booster, header)


def train_ranker(features: np.ndarray, labels: np.ndarray, impression: np.ndarray, time: np.ndarray,
                 names: tuple[str, ...], config: RankerConfig, model_version: str, source: str = "") -> Ranker:
    """Train on every day but the last of the rows (time = each row's impression time, rows in stream order, an
    impression's rows contiguous), validate on the last day with early stopping. Returns the ranker with its
    header (validation AUC of the booster, the rounds kept)."""
    import lightgbm

    if config.objective not in OBJECTIVES:
        raise RankerError(f"objective {config.objective!r}: one of {', '.join(OBJECTIVES)}")
    features = np.ascontiguousarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if len(labels) == 0 or features.shape != (len(labels), len(names)):
        raise RankerError(f"training rows: features {features.shape}, labels {labels.shape}, {len(names)} names")
    split = validation_start(time)
    if split == 0 or split == len(labels):
        raise RankerError("the logged rows span less than two days: nothing to validate on (log more days)")
    train = _dataset(lightgbm, features[:split], labels[:split], impression[:split], names, config)
    valid = _dataset(lightgbm, features[split:], labels[split:], impression[split:], names, config, reference=train)
    params = {"objective": config.objective, "num_leaves": config.num_leaves, "learning_rate": config.learning_rate,
              "min_data_in_leaf": config.min_data_in_leaf, "seed": config.seed, "deterministic": True,
              "num_threads": config.threads, "verbosity": -1, "metric": "auc"}
    booster = lightgbm.train(params, train, num_boost_round=config.rounds, valid_sets=[valid],
                             callbacks=[lightgbm.early_stopping(config.early_stopping, verbose=False)])
    best = booster.best_score.get("valid_0", {}).get("auc")
    booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    header = {"format": FORMAT, "features": list(names), "objective": config.objective, "config": asdict(config),
              "model_version": model_version, "lightgbm": lightgbm.__version__, "source": source,
              "rows": {"train": int(split), "validation": int(len(labels) - split)},
              "data_sha256": data_digest(features, labels, impression), "rounds": int(booster.num_trees()),
              "validation_auc": None if best is None else float(best)}
    return Ranker(booster, header)


def validation_start(time: np.ndarray) -> int:
    """The first row of the last calendar day (UTC) of the rows (`time` ascending, epoch seconds)."""
    time = np.asarray(time)
    if len(time) == 0:
        return 0
    return int(np.searchsorted(time, int(time[-1]) - int(time[-1]) % DAY_SECONDS, side="left"))


def importance(ranker: Ranker) -> dict[str, float]:
    """Each feature's total gain, in header order."""
    gains = ranker.booster.feature_importance(importance_type="gain")
    return {name: float(g) for name, g in zip(ranker.features, gains)}


def data_digest(features: np.ndarray, labels: np.ndarray, impression: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (np.ascontiguousarray(features, dtype=np.float64), np.asarray(labels, dtype=np.float64),
                  np.asarray(impression, dtype=np.int64)):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _dataset(lightgbm, features, labels, impression, names, config: RankerConfig, reference=None):
    group = None
    if config.objective == "lambdarank":
        starts = np.flatnonzero(np.concatenate([[True], impression[1:] != impression[:-1]]))
        group = np.diff(np.concatenate([starts, [len(impression)]]))
    return lightgbm.Dataset(features, labels, group=group, feature_name=list(names), reference=reference,
                            free_raw_data=False, params={"verbosity": -1})


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
