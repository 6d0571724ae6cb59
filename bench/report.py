#!/usr/bin/env python3
"""Turns one bench/run.sh run directory into a Markdown section for
bench/RESULTS.md (printed to stdout).

Medians are over every timed repetition of every round. llama.cpp's figure
is the better of its two load modes (-lm none = old -mmp 0, -lm mmap = old
-mmp 1), chosen per metric; the mode is shown.

Rooflines (per thread count T, from machine_limits, best of its start and end
runs):
  decode   bytes/token = weight bytes read per token (every tensor; with a
           tied embedding the whole table is read as the output head) + the
           mean KV cache read (n_depth + n_gen/2 positions x layers x 2 x kv_heads x
           head_dim x 2 bytes, f16); roofline t/s = read GB/s(T) / bytes/token
  prefill  ops/token = 2 x matmul weights (all but token_embd: the head runs
           for the last token only) + attention 4 x (n_depth + n_prompt/2) x heads x
           head_dim x layers; roofline t/s = int8 VNNI GOP/s(T) / ops/token
usage: report.py RUNDIR
"""
import json
import os
import statistics
import sys

try:
    import gguf
except ImportError:  # pragma: no cover
    gguf = None


def read_meta(rundir):
    meta = {}
    with open(os.path.join(rundir, "meta.txt")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    return meta


def read_manifest(rundir):
    rows = []
    with open(os.path.join(rundir, "manifest.tsv")) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(head, line.rstrip("\n").split("\t"))))
    return rows


def load_json(path):
    with open(path) as f:
        txt = f.read().strip()
    if not txt:
        return None
    try:
        return json.loads(txt)
    except json.JSONDecodeError:
        # llama-ttft prints one object per line; take the last
        return json.loads(txt.splitlines()[-1])


def max_rss_kib(path):
    with open(path) as f:
        for line in f:
            if "Maximum resident set size" in line:
                return int(line.rsplit(":", 1)[1])
    return None


def model_facts(path):
    """Bytes and shapes from the GGUF tensor table (PyPI gguf package)."""
    r = gguf.GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()

    def u32(key, default=None):
        f = r.fields.get(f"{arch}.{key}")
        return int(f.parts[-1][0]) if f else default

    n_layer, n_embd = u32("block_count"), u32("embedding_length")
    n_head = u32("attention.head_count")
    n_head_kv = u32("attention.head_count_kv", n_head)
    head_dim = u32("attention.key_length", n_embd // n_head)
    total_bytes = total_params = 0
    embd_bytes = embd_params = 0
    has_output = False
    for t in r.tensors:
        total_bytes += int(t.n_bytes)
        total_params += int(t.n_elements)
        if t.name == "token_embd.weight":
            embd_bytes, embd_params = int(t.n_bytes), int(t.n_elements)
        if t.name == "output.weight":
            has_output = True
    types = {}
    for t in r.tensors:
        name = t.tensor_type.name
        types[name] = types.get(name, 0) + int(t.n_bytes)
    return dict(arch=arch, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv,
                head_dim=head_dim, total_bytes=total_bytes, total_params=total_params,
                embd_bytes=embd_bytes, embd_params=embd_params, has_output=has_output,
                decode_weight_bytes=total_bytes - (embd_bytes if has_output else 0),
                matmul_params=total_params - embd_params, types=types)


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    return "n/a" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def pct(x):
    return "n/a" if x is None else f"{100 * x:.0f}%"


def table(w, headers, rows):
    """A markdown table; columns (past the first two) whose every cell is
    n/a are left out: a run without a prompt test, or without TTFT runs,
    has no such columns."""
    keep = [i for i in range(len(headers))
            if i < 2 or any(not str(r[i]).startswith("n/a") for r in rows)]
    w("| " + " | ".join(headers[i] for i in keep) + " |")
    w("| " + " | ".join("---" if i == 0 else "---:" for i in keep) + " |")
    for r in rows:
        w("| " + " | ".join(str(r[i]) for i in keep) + " |")


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    rundir = sys.argv[1]
    meta = read_meta(rundir)
    rows = read_manifest(rundir)
    limits = {}
    for which in ("start", "end"):
        p = os.path.join(rundir, f"limits_{which}.json")
        if os.path.exists(p):
            limits[which] = load_json(p)
    n_prompt, n_gen = int(meta["n_prompt"]), int(meta["n_gen"])
    n_depth = int(meta.get("n_depth", 0))  # context filled before each run (-d)

    def best_limit(key):
        vals = [lim[key] for lim in limits.values() if lim and key in lim]
        return max(vals) if vals else None

    # samples[(model, threads, engine, mode, test)] = [t/s, ...]
    samples, ttft, rss = {}, {}, {}
    models, thread_counts = [], []
    for row in rows:
        model, t = row["model"], int(row["threads"])
        if model not in models:
            models.append(model)
        if t not in thread_counts:
            thread_counts.append(t)
        data = load_json(os.path.join(rundir, row["json"]))
        if data is None:
            continue
        recs = data if isinstance(data, list) else [data]
        key = (model, t, row["engine"], row["mode"])
        if row["kind"] == "bench":
            for rec in recs:
                test = "pp" if rec.get("n_prompt", 0) > 0 else "tg"
                samples.setdefault(key + (test,), []).extend(rec.get("samples_ts", []))
        else:
            for rec in recs:
                if rec.get("ttft_ms") is not None:
                    ttft.setdefault(key, []).append(float(rec["ttft_ms"]))
            kib = max_rss_kib(os.path.join(rundir, row["time"]))
            if kib is not None:
                rss.setdefault(key, []).append(kib / 1024.0)

    modes = ["none", "mmap"]

    def llama_best(store, model, t, test=None, higher=True):
        best, best_mode = None, None
        for mode in modes:
            key = (model, t, "llama.cpp", mode) + ((test,) if test else ())
            v = med(store.get(key, []))
            if v is not None and (best is None or (v > best if higher else v < best)):
                best, best_mode = v, mode
        return best, best_mode

    out = []
    w = out.append
    title = f"## Generative engine vs llama.cpp ({meta.get('date_utc', '?')}, commit {meta.get('commit', '?')})"
    w(title)
    w("")
    if meta.get("label"):
        w(f"**{meta['label']}**")
        w("")
    notes = os.path.join(rundir, "notes.txt")
    if os.path.exists(notes):
        with open(notes) as f:
            for line in f:
                w(line.rstrip("\n"))
                w("")
    lv = ""
    p = os.path.join(rundir, "llama_version.txt")
    if os.path.exists(p):
        with open(p) as f:
            lv = " ".join(x.strip() for x in f if x.strip())
    topo = {k: (v or {}).get("topology", "?") for k, v in limits.items()}
    w(f"- Machine: {meta.get('cpu', '?')}, 2 vCPUs, kernel {meta.get('kernel', '?')}; "
      f"2 vCPUs looked like: {topo.get('start', '?')} (start), {topo.get('end', '?')} (end) "
      f"(machine_limits: 2-thread/1-thread FMA throughput "
      f"{fmt((limits.get('start') or {}).get('fma_scaling_2t'), 2)} / "
      f"{fmt((limits.get('end') or {}).get('fma_scaling_2t'), 2)}, read bandwidth "
      f"{fmt((limits.get('start') or {}).get('read_scaling_2t'), 2)} / "
      f"{fmt((limits.get('end') or {}).get('read_scaling_2t'), 2)}). Load average "
      f"{meta.get('loadavg_start', '?')} at the start, {meta.get('loadavg_end', '?')} at the end.")
    commit = meta.get('commit', '?')
    dirty = (" (`+dirty`: uncommitted changes under src/, include/ or tools/ were built)"
             if commit.endswith('+dirty') else " (clean tree)")
    w(f"- coreai: commit {commit}{dirty}, `{meta.get('coreai', '?')}`.")
    w(f"- llama.cpp: from the llama-cpp-python {meta.get('llama_version', '?')} sdist, built by "
      f"bench/build_llamacpp.sh (Release, GGML_NATIVE=ON); {lv or 'version unknown'}.")
    w(f"- {meta.get('rounds')} rounds, engines alternating in rotating order; each invocation "
      f"-r {meta.get('reps')}; figures are medians over all repetitions of all rounds; "
      f"llama.cpp = the better of `-lm none` (old `-mmp 0`) and `-lm mmap` (old `-mmp 1`), "
      f"mode in brackets.")
    w("")

    # ---- machine limits
    reps_l = (limits.get("start") or {}).get("reps", "?")
    w(f"Machine limits (bench/machine_limits, best of {reps_l}; start / end of the run; the "
      f"quiet-machine reference is shared/REFERENCE/machine.md):")
    w("")
    w("| | 1 thread | 2 threads |")
    w("| --- | ---: | ---: |")
    for label, key, nd in (("read bandwidth, GB/s", "read_gbs_%dt", 1),
                           ("fp32 FMA zmm, GFLOP/s", "fp32_fma_gflops_%dt", 0),
                           ("int8 vpdpbusd zmm, GOP/s", "int8_vnni_gops_%dt", 0)):
        cells = []
        for t in (1, 2):
            vals = [fmt((limits.get(wh) or {}).get(key % t), nd) for wh in ("start", "end")]
            cells.append(" / ".join(vals))
        w(f"| {label} | {cells[0]} | {cells[1]} |")
    cells = []
    for t in (1, 2):
        vals = []
        for wh in ("start", "end"):
            sh = (limits.get(wh) or {}).get(f"cpu_share_{t}t")
            vals.append("n/a" if not sh else "/".join(f"{x:.2f}" for x in sh))
        cells.append(" ; ".join(vals))
    w(f"| CPU share of those repetitions (read/FMA/VNNI; 1 = no other process ran) | "
      f"{cells[0]} | {cells[1]} |")
    cells = []
    for t in (1, 2):
        vals = []
        for wh in ("start", "end"):
            lim = limits.get(wh) or {}
            v = [lim.get(f"{k}_{t}t_per_cpu") for k in ("read_gbs", "fp32_fma_gflops", "int8_vnni_gops")]
            vals.append("n/a" if None in v else f"{v[0]:.1f}; {v[1]:.0f}; {v[2]:.0f}")
        cells.append(" / ".join(vals))
    if any(c.replace("n/a", "").replace(" / ", "").strip() for c in cells):
        w(f"| per second of CPU time received (= best / CPU share): read; FMA; VNNI | {cells[0]} | {cells[1]} |")
    w("| reference, quiet machine (machine.md): read GB/s; FMA; VNNI | 29.5; 222; 886 | "
      "60-66 (separate cores) or ~30 (one core); 2x or 1x |")
    shares = [x for lim in limits.values() if lim for t in (1, 2) for x in lim.get(f"cpu_share_{t}t", [])]
    if shares and min(shares) < 0.95:
        w(f"Other processes ran during some of these measurements (CPU share down to {min(shares):.2f}), "
          "so the measured limits can be below the hardware's and the roofline fractions below "
          "overstated; the engines' numbers were taken under the same conditions.")
        w("")

    # ---- main table
    facts = {}
    for m in models:
        try:
            facts[m] = model_facts(m) if gguf else None
        except Exception as e:  # noqa: BLE001
            print(f"report.py: cannot read {m}: {e}", file=sys.stderr)
            facts[m] = None

    pp, tg = f"pp{n_prompt}", f"tg{n_gen}"
    if n_depth:
        pp, tg = f"{pp} @ d{n_depth}", f"{tg} @ d{n_depth}"
    ttp = meta.get("ttft_prompt", "128")
    heads = ["model", "MiB", "t", f"{pp} coreai", f"{pp} llama.cpp", "ratio", f"{tg} coreai",
             f"{tg} llama.cpp", "ratio", f"TTFT{ttp} ms coreai", "TTFT llama.cpp",
             "peak RSS MiB coreai", "RSS llama.cpp"]
    trows = []
    for m in models:
        name = os.path.basename(m).removesuffix(".gguf")
        mib = os.path.getsize(m) / 2**20
        for t in thread_counts:
            c_pp = med(samples.get((m, t, "coreai", "-", "pp"), []))
            c_tg = med(samples.get((m, t, "coreai", "-", "tg"), []))
            l_pp, l_pp_m = llama_best(samples, m, t, "pp")
            l_tg, l_tg_m = llama_best(samples, m, t, "tg")
            c_tt = med(ttft.get((m, t, "coreai", "-"), []))
            l_tt, l_tt_m = llama_best(ttft, m, t, higher=False)
            c_rss = med(rss.get((m, t, "coreai", "-"), []))
            l_rss, l_rss_m = llama_best(rss, m, t, higher=False)
            trows.append([name, f"{mib:.0f}", t, fmt(c_pp, 1), f"{fmt(l_pp, 1)} ({l_pp_m})",
                          ratio(c_pp, l_pp), fmt(c_tg, 1), f"{fmt(l_tg, 1)} ({l_tg_m})",
                          ratio(c_tg, l_tg), fmt(c_tt, 0), f"{fmt(l_tt, 0)} ({l_tt_m})",
                          fmt(c_rss, 0), f"{fmt(l_rss, 0)} ({l_rss_m})"])
    table(w, heads, trows)
    w("")

    # ---- rooflines
    w("Fractions of the roofline (decode against read bandwidth, prefill against the int8 "
      "VNNI peak, at the same thread count; see bench/README.md for the byte and op counts):")
    w("")
    heads = ["model", "t", "decode MB/token", "decode roofline t/s", f"{tg} coreai",
             f"{tg} llama.cpp", "prefill GOP/token", "prefill roofline t/s", f"{pp} coreai",
             f"{pp} llama.cpp"]
    trows = []
    for m in models:
        fx = facts.get(m)
        name = os.path.basename(m).removesuffix(".gguf")
        for t in thread_counts:
            if not fx:
                trows.append([name, t] + ["n/a"] * 8)
                continue
            kv = (n_depth + n_gen / 2) * fx["n_layer"] * 2 * fx["n_head_kv"] * fx["head_dim"] * 2
            dec_bytes = fx["decode_weight_bytes"] + kv
            bw = best_limit(f"read_gbs_{t}t")
            dec_roof = bw * 1e9 / dec_bytes if bw else None
            ops = (2 * fx["matmul_params"] +
                   4 * (n_depth + n_prompt / 2) * fx["n_head"] * fx["head_dim"] * fx["n_layer"])
            peak = best_limit(f"int8_vnni_gops_{t}t")
            pre_roof = peak * 1e9 / ops if peak else None
            c_pp = med(samples.get((m, t, "coreai", "-", "pp"), []))
            c_tg = med(samples.get((m, t, "coreai", "-", "tg"), []))
            l_pp, _ = llama_best(samples, m, t, "pp")
            l_tg, _ = llama_best(samples, m, t, "tg")

            def frac(x, roof):
                return pct(x / roof) if x is not None and roof else "n/a"

            no_pp = c_pp is None and l_pp is None  # no prompt test in this run
            trows.append([name, t, f"{dec_bytes / 1e6:.1f}", fmt(dec_roof, 0), frac(c_tg, dec_roof),
                          frac(l_tg, dec_roof), "n/a" if no_pp else f"{ops / 1e9:.3f}",
                          "n/a" if no_pp else fmt(pre_roof, 0), frac(c_pp, pre_roof),
                          frac(l_pp, pre_roof)])
    table(w, heads, trows)
    w("")

    # ---- llama.cpp per mode
    w("llama.cpp by load mode (medians):")
    w("")
    heads = ["model", "t", f"{pp} none", f"{pp} mmap", f"{tg} none", f"{tg} mmap", "TTFT none",
             "TTFT mmap", "RSS none", "RSS mmap"]
    trows = []
    for m in models:
        name = os.path.basename(m).removesuffix(".gguf")
        for t in thread_counts:
            cells = []
            for test in ("pp", "tg"):
                for mode in modes:
                    cells.append(fmt(med(samples.get((m, t, "llama.cpp", mode, test), [])), 1))
            for store in (ttft, rss):
                for mode in modes:
                    cells.append(fmt(med(store.get((m, t, "llama.cpp", mode), [])), 0))
            trows.append([name, t] + cells)
    table(w, heads, trows)
    w("")

    # ---- file composition
    if any(facts.values()):
        w("Files (bytes by tensor type, from the GGUF tensor table):")
        w("")
        for m in models:
            fx = facts.get(m)
            if not fx:
                continue
            parts = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in
                              sorted(fx["types"].items(), key=lambda kv: -kv[1]))
            w(f"- `{os.path.basename(m)}`: {fx['arch']}, {fx['total_params'] / 1e6:.1f} M params; {parts}")
        w("")

    # ---- exact commands
    w("Exact commands (first file and thread count shown; the same for every file and thread "
      "count; each under `/usr/bin/time -v`):")
    w("")
    w("```")
    seen = set()
    first_model = models[0] if models else None
    first_t = str(thread_counts[0]) if thread_counts else None
    for row in rows:
        if row["model"] != first_model or row["threads"] != first_t:
            continue
        k = (row["engine"], row["mode"], row["kind"])
        if k in seen:
            continue
        seen.add(k)
        w(row["cmd"].replace(os.getcwd() + "/", "").replace(os.path.expanduser("~"), "~"))
    w("```")
    w("")
    w(f"Raw JSON: `{os.path.relpath(rundir)}` (not committed).")
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
