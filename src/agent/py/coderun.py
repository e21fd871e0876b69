# SPDX-License-Identifier: Apache-2.0
# Wrapper for one-shot POST /process/code-run in Python (contract 3.5), compiled into the agent and
# run as: python3 -u -I -c "<this source>" <argv...>
#
# Protocol: fd 3 = the user's code (read to EOF, then closed); fd 4 = one JSON line written at exit:
# {"charts":[Chart...]} (always, even empty; fd 4 is moved to a close-on-exec fd first so user
# children never inherit it); fds 1 and 2 are the user's stdout/stderr.
# The code runs as __main__ with sys.argv == ["-c", *argv], like `python3 -c code argv...`, with ''
# (cwd), PYTHONPATH and the user site-packages put back on sys.path (-I removed them). An uncaught
# exception prints the usual traceback (without this wrapper's frames) and exits 1; SystemExit
# codes propagate; KeyboardInterrupt (SIGINT) prints its traceback and the process dies by SIGINT.
# Charts: MPLBACKEND defaults to Agg. matplotlib is never imported here: an import hook patches
# matplotlib.pyplot when the user imports it, so plt.show() captures (then closes) every open
# figure, and the figures still open when the code ends are captured too. Each figure gives one
# Chart (snake_case fields, see contract 3.5). Chart extraction errors are dropped silently.
# Limits: at most 50 charts, 1000 elements per chart and 10000 points per element.

import json
import os
import sys

_MAX_CHARTS = 50
_MAX_ELEMENTS = 1000
_MAX_POINTS = 10000

_charts = []


def _read_code():
    chunks = []
    while True:
        data = os.read(3, 1 << 20)
        if not data:
            break
        chunks.append(data)
    os.close(3)
    return b"".join(chunks)


def _out_fd():
    try:
        import fcntl
        fd = fcntl.fcntl(4, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(4)
        return fd
    except OSError:
        return -1


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if f != f or f in (float("inf"), float("-inf")):
        return None
    return f


def _nums(seq):
    return [_num(v) for v in list(seq)[:_MAX_POINTS]]


def _points(xy):
    out = []
    for row in list(xy)[:_MAX_POINTS]:
        out.append([_num(row[0]), _num(row[1])])
    return out


def _label(artist):
    try:
        lab = artist.get_label()
    except Exception:
        return ""
    lab = lab if isinstance(lab, str) else str(lab)
    return "" if lab.startswith("_") else lab  # "_child0" etc. are matplotlib defaults


# --- chart extraction (only ever called once matplotlib.pyplot is loaded) ---

def _axes_common(ax):
    d = {
        "title": ax.get_title(),
        "x_label": ax.get_xlabel(),
        "y_label": ax.get_ylabel(),
        "x_scale": ax.get_xscale(),
        "y_scale": ax.get_yscale(),
    }
    try:
        d["x_ticks"] = _nums(ax.get_xticks())
        d["x_tick_labels"] = [t.get_text() for t in ax.get_xticklabels()][:_MAX_POINTS]
        d["y_ticks"] = _nums(ax.get_yticks())
        d["y_tick_labels"] = [t.get_text() for t in ax.get_yticklabels()][:_MAX_POINTS]
    except Exception:
        pass
    return d


def _tick_label_at(ticks, labels, pos):
    best, dist = None, None
    for t, lab in zip(ticks, labels):
        if t is None:
            continue
        d = abs(t - pos)
        if dist is None or d < dist:
            best, dist = lab, d
    return best


def _box_elements(ax):
    out = []
    for stats in getattr(ax, "_dt_bxp", []):
        for i, s in enumerate(stats):
            try:
                out.append({
                    "label": str(s.get("label", i + 1)),
                    "min": _num(s.get("whislo")),
                    "first_quartile": _num(s.get("q1")),
                    "median": _num(s.get("med")),
                    "third_quartile": _num(s.get("q3")),
                    "max": _num(s.get("whishi")),
                    "outliers": _nums(s.get("fliers", [])),
                })
            except Exception:
                continue
    return out


def _axes_chart(ax):
    """Returns a chart dict for one axes, or None when the axes holds no plotted data."""
    from matplotlib.container import BarContainer
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Wedge

    chart = _axes_common(ax)
    boxes = _box_elements(ax)
    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    lines = [ln for ln in ax.get_lines()]
    if boxes:
        chart["type"] = "box_and_whisker"
        chart["elements"] = boxes
    elif wedges:
        chart["type"] = "pie"
        chart["elements"] = [{
            "label": _label(w),
            "angle": _num(abs(w.theta2 - w.theta1)),
            "radius": _num(w.r),
        } for w in wedges]
    elif bars:
        chart["type"] = "bar"
        elems = []
        for c in bars:
            group = _label(c)
            if group.startswith("_"):
                group = ""
            horiz = getattr(c, "orientation", None) == "horizontal"
            ticks = chart.get("y_ticks" if horiz else "x_ticks", [])
            labels = chart.get("y_tick_labels" if horiz else "x_tick_labels", [])
            for r in c.patches:
                if horiz:
                    pos, value = r.get_y() + r.get_height() / 2.0, r.get_width()
                else:
                    pos, value = r.get_x() + r.get_width() / 2.0, r.get_height()
                lab = _tick_label_at(ticks, labels, pos)
                elems.append({"label": lab if lab else str(_num(pos)), "group": group,
                              "value": _num(value)})
        chart["elements"] = elems
    elif scatters:
        chart["type"] = "scatter"
        chart["elements"] = [{"label": _label(s), "points": _points(s.get_offsets())}
                             for s in scatters]
    elif lines:
        chart["type"] = "line"
        chart["elements"] = [{"label": _label(ln), "points": _points(ln.get_xydata())}
                             for ln in lines]
    elif ax.patches or ax.collections or ax.images:
        chart["type"] = "unknown"
        chart["elements"] = []
    else:
        return None
    chart["elements"] = chart["elements"][:_MAX_ELEMENTS]
    return chart


def _figure_chart(fig):
    import base64
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # also draws, so tick labels are filled in
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    subs = []
    for ax in fig.axes:
        try:
            c = _axes_chart(ax)
        except Exception:
            c = None
        if c is not None:
            subs.append(c)
    title = ""
    try:
        if fig._suptitle is not None:
            title = fig._suptitle.get_text()
    except Exception:
        pass
    if len(subs) > 1:
        return {"type": "composite_chart", "title": title, "png": png,
                "elements": subs[:_MAX_ELEMENTS]}
    if len(subs) == 1:
        chart = subs[0]
        if title and not chart.get("title"):
            chart["title"] = title
        chart["png"] = png
        return chart
    return {"type": "unknown", "title": title, "png": png, "elements": []}


def _capture(close):
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        nums = plt.get_fignums()
    except Exception:
        return
    for n in nums:
        try:
            fig = plt.figure(n)
            if len(_charts) < _MAX_CHARTS:
                _charts.append(_figure_chart(fig))
        except Exception:
            pass
        if close:
            try:
                plt.close(n)
            except Exception:
                pass


def _patch_pyplot(plt):
    orig_show = plt.show

    def show(*args, **kwargs):
        try:
            _capture(close=False)
        except Exception:
            pass
        try:
            backend = str(plt.get_backend()).lower()
        except Exception:
            backend = "agg"
        result = None
        if backend not in ("agg", "pdf", "ps", "svg", "cairo", "template", "pgf"):
            result = orig_show(*args, **kwargs)
        try:
            plt.close("all")
        except Exception:
            pass
        return result

    show.__doc__ = orig_show.__doc__
    plt.show = show
    try:
        from matplotlib.axes import Axes
        orig_bxp = Axes.bxp

        def bxp(self, bxpstats, *args, **kwargs):
            result = orig_bxp(self, bxpstats, *args, **kwargs)
            try:
                stats = [dict(s) for s in bxpstats]
                if not hasattr(self, "_dt_bxp"):
                    self._dt_bxp = []
                self._dt_bxp.append(stats)
            except Exception:
                pass
            return result

        bxp.__doc__ = orig_bxp.__doc__
        Axes.bxp = bxp
    except Exception:
        pass


class _PyplotFinder:
    """sys.meta_path hook: lets matplotlib.pyplot load normally, then patches it."""

    def __init__(self):
        self.busy = False

    def find_spec(self, name, path=None, target=None):
        if name != "matplotlib.pyplot" or self.busy:
            return None
        import importlib.util
        self.busy = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader

        class _Loader:
            def create_module(self, s):
                return loader.create_module(s)

            def exec_module(self, module):
                loader.exec_module(module)
                try:
                    _patch_pyplot(module)
                except Exception:
                    pass

            def __getattr__(self, attr):
                return getattr(loader, attr)

        spec.loader = _Loader()
        return spec


def _restore_paths():
    extra = [""] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[0:0] = [p for p in extra if p == "" or p not in sys.path]
    try:
        import site
        user = site.getusersitepackages()
        if user and os.path.isdir(user) and user not in sys.path:
            before = list(sys.path)
            site.addsitedir(user)
            added = [p for p in sys.path if p not in before]
            for p in added:
                sys.path.remove(p)
            pos = len(sys.path)
            for i, p in enumerate(sys.path):
                if p.endswith("-packages"):
                    pos = i
                    break
            sys.path[pos:pos] = added
    except Exception:
        pass


def _write_charts(fd):
    if fd < 0:
        return
    try:
        line = json.dumps({"charts": _charts}, allow_nan=False) + "\n"
    except (TypeError, ValueError):
        line = '{"charts":[]}\n'
    view = memoryview(line.encode("utf-8"))
    try:
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
    except OSError:
        pass


def _main():
    import linecache
    import traceback
    import types

    code = _read_code()
    fd = _out_fd()
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.meta_path.insert(0, _PyplotFinder())
    sys.argv = ["-c"] + sys.argv[1:]
    try:
        text = code.decode("utf-8", "surrogateescape")
        linecache.cache["<string>"] = (len(text), None, text.splitlines(True), "<string>")
    except Exception:
        pass
    mod = types.ModuleType("__main__")
    mod.__dict__["__builtins__"] = __builtins__
    main_mod = sys.modules["__main__"]
    sys.modules["__main__"] = mod
    _restore_paths()
    status = 0
    sigint = False
    try:
        exec(compile(code, "<string>", "exec"), mod.__dict__)
    except SystemExit as e:
        c = e.code
        if c is None:
            status = 0
        elif isinstance(c, int):
            status = c & 0xFF
        else:
            try:
                sys.stderr.write(str(c) + "\n")
            except Exception:
                pass
            status = 1
    except BaseException as e:
        tb = e.__traceback__
        if tb is not None and tb.tb_frame.f_code is _main.__code__:
            tb = tb.tb_next  # the user's code has the same "<string>" file name: compare code
        try:
            sys.stderr.write("".join(traceback.format_exception(type(e), e, tb)))
        except Exception:
            pass
        status = 1
        sigint = isinstance(e, KeyboardInterrupt)
    try:
        _capture(close=True)
    except BaseException:
        pass
    _write_charts(fd)
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    del main_mod
    if sigint:
        import signal
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    # Normal interpreter shutdown (atexit handlers, non-daemon threads) still happens.
    sys.exit(status)


_main()
