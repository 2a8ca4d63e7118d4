"""The calibrated synthetic connectome: FlyWire's parquet schema at any size, deterministic per seed.

A random background (lognormal in/out degrees, FlyWire-like synapse counts, Dale's law, 70 %
excitatory) plus feed-forward pathways downstream of "sensory" seed sets: every preset's driven
neurons (sugar GRNs, P9) and a number of random sets, so the structure is not tailored to presets
alone. Pathway strengths are calibrated so `sugar` gives the real brain's activity (about 17,000
spikes and 300-500 active neurons per trial-second). Every file it writes says it is synthetic.
Neurons carry the real FlyWire v783 root ids packaged with flyhpc (resources/flywire_783_root_ids.gz,
sha256-pinned), so the output never depends on where flyhpc is installed or what data lies around.
Entry points: `SynthParams`, `generate`, `packaged_ids`, `default_sources`, `sources_in`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from flyhpc.data.connectome import Sources, read_completeness
from flyhpc.errors import ConfigError, DataError
from flyhpc.files import atomic_path, write_json_atomic
from flyhpc.model import PRESETS
from flyhpc.results.parquet import write_parquet

FULL_SCALE_EDGES = 15_091_983
PACKAGED_IDS = Path(__file__).resolve().parents[1] / "resources" / "flywire_783_root_ids.gz"
PACKAGED_IDS_SHA256 = "a4df4450683b1fd506acbb24b16495eca9ea3ba67504957f7466f28cbb9da759"
# Recorded in every output's metadata; the packaged ids are those of Completeness_783.csv.
PACKAGED_IDS_ORIGIN = "real ids from Completeness_783.csv"
# The presets whose neurons seed a pathway each: only these two, so presets added later (the paper's other
# neuron sets) leave every synthetic connectome, its digest and its calibration as they were.
SEEDED_PRESETS = ("sugar", "p9")
META_FILE = "synthetic.json"
COMPLETENESS = "Completeness.csv"
CONNECTIVITY = "Connectivity.parquet"
FORMAT = 1


@dataclass(frozen=True)
class SynthParams:
    """Knobs of the generator (defaults are the calibrated full-scale values).

    Background: out/in degrees lognormal with the given median and mean (capped at max_degree);
    synapses per edge: a `single_synapse_fraction` of ones, the rest 2 + geometric, for the given
    mean; a neuron is excitatory with probability `excitatory_fraction` (its sign is that of all
    its outgoing edges). Pathways: from each seed set of size s, layers of size
    max(pathway_min_layer, f x s) for f in `pathway_layers`; each layer neuron receives
    `pathway_fan_in` edges from the layer before with lognormal synapse counts of median
    `pathway_counts[l]` (sigma `pathway_sigma`); a `pathway_inhibitory_fraction` of each layer is
    inhibitory. `extra_pathways` random seed sets of `extra_seed_size` neurons get pathways too.
    """

    degree_median: float = 59.0
    degree_mean: float = 109.0
    max_degree: int = 7600
    excitatory_fraction: float = 0.7
    single_synapse_fraction: float = 0.37
    synapses_per_edge_mean: float = 3.6
    pathway_layers: tuple[float, ...] = (3.0, 5.0, 6.0, 5.0)
    pathway_min_layer: int = 12
    pathway_fan_in: int = 8
    pathway_counts: tuple[float, ...] = (20.0, 20.0, 20.0, 20.0)
    pathway_sigma: float = 0.5
    pathway_inhibitory_fraction: float = 0.2
    extra_pathways: int = 40
    extra_seed_size: int = 20

    def __post_init__(self) -> None:
        if len(self.pathway_counts) != len(self.pathway_layers):
            raise ConfigError("SynthParams: pathway_counts needs one value per pathway layer")
        if not 0 <= self.excitatory_fraction <= 1 or not 0 <= self.single_synapse_fraction < 1:
            raise ConfigError("SynthParams: fractions must lie in [0, 1]")
        if self.degree_mean < self.degree_median:
            raise ConfigError("SynthParams: a lognormal's mean cannot be below its median")


def packaged_ids(path: Path = PACKAGED_IDS) -> np.ndarray:
    """The 138,639 FlyWire v783 root ids shipped with flyhpc, in the row order of Completeness_783.csv.

    The file (made by scripts/pack-flywire-ids.py) holds the ids delta-encoded as little-endian int64,
    gzip-compressed; its sha256 is pinned in `PACKAGED_IDS_SHA256`.

    Raises
    ------
    DataError
        If the file is missing or its sha256 is not the pinned one.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"packaged FlyWire ids {path} not found; reinstall flyhpc")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PACKAGED_IDS_SHA256:
        raise DataError(f"packaged FlyWire ids {path}: sha256 {digest} does not match the pinned "
                        f"{PACKAGED_IDS_SHA256}; the file is damaged, reinstall flyhpc")
    return np.cumsum(np.frombuffer(gzip.decompress(data), dtype="<i8"), dtype=np.int64)


def _neuron_ids(rng: np.random.Generator, n_neurons: int | None, ids_csv: Path | None) -> tuple[np.ndarray, str]:
    """The ids to use (all of them, or a sorted random subset of `n_neurons`) and where they came from."""
    if ids_csv is None:
        ids, origin, where = packaged_ids(), PACKAGED_IDS_ORIGIN, f"FlyWire v783 ({PACKAGED_IDS.name})"
    else:
        ids, origin, where = read_completeness(ids_csv), f"real ids from {ids_csv.name}", str(ids_csv)
    if n_neurons is not None and n_neurons < ids.size:
        keep = np.sort(rng.choice(ids.size, size=n_neurons, replace=False))
        ids = ids[keep]
    elif n_neurons is not None and n_neurons > ids.size:
        raise ConfigError(f"--neurons {n_neurons} exceeds the {ids.size} ids of {where}")
    return ids, origin


def _lognormal_ints(rng, n, median, mean, cap, total) -> np.ndarray:
    sigma = np.sqrt(2.0 * np.log(mean / median))
    raw = rng.lognormal(np.log(median), sigma, size=n)
    raw = np.minimum(raw, cap)
    scaled = raw * (total / raw.sum())
    out = np.floor(scaled).astype(np.int64)
    short = total - int(out.sum())
    if short > 0:  # hand the remainder to the largest fractional parts, deterministically
        out[np.argsort(out - scaled)[:short]] += 1
    return np.maximum(out, 0)


def _synapse_counts(rng, size, p: SynthParams) -> np.ndarray:
    single = rng.random(size) < p.single_synapse_fraction
    rest_mean = (p.synapses_per_edge_mean - p.single_synapse_fraction) / (1 - p.single_synapse_fraction)
    geo_p = 1.0 / max(rest_mean - 1.0, 1.0 + 1e-9)
    counts = 1 + rng.geometric(geo_p, size=size)
    counts[single] = 1
    return counts.astype(np.int64)


def _seed_sets(rng, ids: np.ndarray, p: SynthParams) -> list[np.ndarray]:
    sets = []
    for exp in (PRESETS[key] for key in SEEDED_PRESETS):
        pos = np.searchsorted(ids, np.asarray(exp.activate, dtype=np.int64))
        pos = np.minimum(pos, ids.size - 1)
        found = pos[ids[pos] == np.asarray(exp.activate)]
        if found.size:
            sets.append(found.astype(np.int64))
    used = np.concatenate(sets) if sets else np.zeros(0, np.int64)
    pool = np.setdiff1d(np.arange(ids.size), used)
    n_extra = min(p.extra_pathways, pool.size // max(1, p.extra_seed_size * 25))
    if n_extra:
        picks = rng.choice(pool, size=n_extra * p.extra_seed_size, replace=False)
        sets.extend(np.sort(picks.reshape(n_extra, p.extra_seed_size), axis=1))
    return sets


def _pathways(rng, n: int, sets: list[np.ndarray], p: SynthParams, inhibitory: np.ndarray):
    """Feed-forward layers below each seed set: (pre, post, count) arrays; marks inhibitory neurons."""
    taken = np.zeros(n, dtype=bool)
    for s in sets:
        taken[s] = True
    free = rng.permutation(np.flatnonzero(~taken))
    cursor = 0
    pre_parts, post_parts, count_parts = [], [], []
    for seed in sets:
        previous = seed
        for factor, median in zip(p.pathway_layers, p.pathway_counts):
            size = max(p.pathway_min_layer, int(round(factor * seed.size)))
            if cursor + size > free.size:
                return pre_parts, post_parts, count_parts
            layer = free[cursor:cursor + size]
            cursor += size
            n_inh = int(round(p.pathway_inhibitory_fraction * size))
            inhibitory[layer[:n_inh]] = True
            inhibitory[layer[n_inh:]] = False
            fan = min(p.pathway_fan_in, previous.size)
            src = np.stack([rng.choice(previous, size=fan, replace=False) for _ in range(size)])
            pre_parts.append(src.ravel())
            post_parts.append(np.repeat(layer, fan))
            counts = np.maximum(1, np.round(rng.lognormal(np.log(median), p.pathway_sigma, size=size * fan)))
            count_parts.append(counts.astype(np.int64))
            previous = layer
    return pre_parts, post_parts, count_parts


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values; numpy 2.3's hash-based np.unique is ~5x slower on 15 M int64 keys."""
    keys = np.sort(keys)
    if keys.size < 2:
        return keys
    keep = np.empty(keys.size, dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def build_edges(n: int, n_edges: int, seed: int, ids: np.ndarray, p: SynthParams):
    """Edges of the synthetic connectome: sorted unique (pre, post) pairs and signed counts."""
    rng = np.random.default_rng([seed, FORMAT])
    inhibitory = rng.random(n) >= p.excitatory_fraction
    sets = _seed_sets(rng, ids, p)
    pre_p, post_p, cnt_p = _pathways(rng, n, sets, p, inhibitory)
    for s in sets:
        inhibitory[s] = False  # sensory neurons are excitatory
    if pre_p:
        pw_pre, pw_post, pw_cnt = np.concatenate(pre_p), np.concatenate(post_p), np.concatenate(cnt_p)
        key = pw_pre * n + pw_post
        key, first = np.unique(key, return_index=True)
        pw_cnt = pw_cnt[first]
    else:
        key, pw_cnt = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if key.size > n_edges:
        raise ConfigError(f"{n_edges} edges are too few for the pathways ({key.size}); lower extra_pathways")
    need = n_edges - key.size
    bg_keys = np.zeros(0, np.int64)
    in_weight = rng.lognormal(0.0, np.sqrt(2.0 * np.log(p.degree_mean / p.degree_median)), size=n)
    in_cdf = np.cumsum(np.minimum(in_weight, in_weight.mean() * p.max_degree / p.degree_mean))
    in_cdf /= in_cdf[-1]
    while bg_keys.size < need:
        want = int((need - bg_keys.size) * 1.03) + 16
        outdeg = _lognormal_ints(rng, n, p.degree_median, p.degree_mean, p.max_degree, want)
        pre = np.repeat(np.arange(n, dtype=np.int64), outdeg)
        post = np.minimum(np.searchsorted(in_cdf, rng.random(pre.size)), n - 1)
        new = pre * n + post
        new = _sorted_unique(new[pre != post])
        if key.size:  # drop pairs the pathways already own
            at = np.minimum(np.searchsorted(key, new), key.size - 1)
            new = new[key[at] != new]
        bg_keys = _sorted_unique(np.concatenate([bg_keys, new]))
    if bg_keys.size > need:
        bg_keys = np.sort(rng.choice(bg_keys, size=need, replace=False))
    all_keys = np.concatenate([key, bg_keys])
    counts = np.concatenate([pw_cnt, _synapse_counts(rng, bg_keys.size, p)])
    order = np.argsort(all_keys, kind="stable")
    all_keys, counts = all_keys[order], counts[order]
    pre, post = all_keys // n, all_keys % n
    sign = np.where(inhibitory[pre], -1, 1)
    return pre, post, counts, sign


def generate(out_dir, n_neurons: int | None = None, n_edges: int = FULL_SCALE_EDGES, seed: int = 0,
             ids_csv=None, params: SynthParams = SynthParams()) -> Sources:
    """Write a synthetic Completeness CSV + Connectivity parquet (FlyWire schema) into `out_dir`.

    Full scale by default: the 138,639 real v783 ids packaged with flyhpc (`packaged_ids`; or those of
    `ids_csv`) and 15,091,983 edges; a smaller `n_neurons` takes a seeded random subset of those ids.
    Same arguments, byte-identical files, wherever flyhpc is installed.

    Raises
    ------
    ConfigError
        If the sizes are impossible (fewer than 2 neurons, more neurons than ids, more edges than pairs).
    DataError
        If the packaged ids fail their sha256 check or `ids_csv` is not a Completeness CSV.
    """
    out_dir = Path(out_dir)
    ids_csv = Path(ids_csv) if ids_csv else None
    rng = np.random.default_rng([seed, FORMAT, 1])
    ids, id_origin = _neuron_ids(rng, n_neurons, ids_csv)
    n = ids.size
    if n < 2 or n_edges < 1 or n_edges > n * (n - 1) // 2:
        raise ConfigError(f"cannot make {n_edges} edges among {n} neurons")
    pre, post, counts, sign = build_edges(n, int(n_edges), seed, ids, params)
    source = f"synthetic:{n}n:{n_edges}e:seed{seed}"
    meta = {"format": FORMAT, "synthetic": True, "source": source, "seed": seed, "n_neurons": int(n),
            "n_edges": int(n_edges), "ids": id_origin, "params": asdict(params)}
    table = pa.table({
        "Presynaptic_ID": pa.array(ids[pre]), "Postsynaptic_ID": pa.array(ids[post]),
        "Presynaptic_Index": pa.array(pre.astype(np.int32)), "Postsynaptic_Index": pa.array(post.astype(np.int32)),
        "Connectivity": pa.array(counts.astype(np.int32)), "Excitatory": pa.array(sign.astype(np.int8)),
        "Excitatory x Connectivity": pa.array((sign * counts).astype(np.int32)),
    })
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / COMPLETENESS) as tmp:
        with open(tmp, "w", newline="") as fh:
            fh.write(",Completed\n")
            fh.write("".join(f"{i},True\n" for i in ids.tolist()))
    write_parquet(out_dir / CONNECTIVITY, table,
                  {"flyhpc.data.synthetic": "true", "flyhpc.synthetic_params": json.dumps(meta)})
    write_json_atomic(out_dir / META_FILE, meta)
    return Sources(completeness=out_dir / COMPLETENESS, connectivity=out_dir / CONNECTIVITY, source=source)


def sources_in(folder) -> Sources | None:
    """The synthetic connectome in `folder`, or None if it holds none (or an incomplete one)."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not (meta_path.is_file() and (folder / COMPLETENESS).is_file() and (folder / CONNECTIVITY).is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        raise DataError(f"{meta_path}: not valid JSON; delete the folder to regenerate it") from None
    if not meta.get("synthetic"):
        return None
    return Sources(completeness=folder / COMPLETENESS, connectivity=folder / CONNECTIVITY, source=meta["source"])


def default_sources(data_dir) -> Sources:
    """The full-scale, seed-0 synthetic connectome under <data_dir>/synthetic/, generated if absent."""
    digest = hashlib.sha256(json.dumps([FORMAT, asdict(SynthParams())], sort_keys=True).encode()).hexdigest()
    folder = Path(data_dir) / "synthetic" / f"fullscale-seed0-{digest[:10]}"
    found = sources_in(folder)
    if found is not None:
        return found
    return generate(folder, seed=0)
