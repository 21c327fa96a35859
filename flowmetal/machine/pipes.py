"""Pipelines: the PIPE, PSTAGE, PSTAGE_END and PIPE_END instructions.

A pipeline of external programs is one `exec` effect. A pipeline with fm-code stages runs
stage by stage: an fm stage's output is a buffer in the state, read by the next stage; a run of
consecutive external stages is one `exec` (a group). A group followed by an fm stage is a
*stream*: it is started (`exec` with `stream`) and the fm stage reads its output as it comes
(`stream_read`), so an endless producer (`tail -f log | while read l; ...`) works; the stream
is closed (`stream_close`) when the fm stage ends, however it ends (docs/language.md).
"""
from __future__ import annotations

from flowmetal.lang import ast as A
from flowmetal.lang.support import UNSUPPORTED
from flowmetal.machine.errors import ShellError, Unwind
from flowmetal.machine.expand import Expander

SIGPIPE_STATUS = 141


class PipeOps:
    """Mixin for the Machine (through CommandOps): pipelines."""

    def external_argv(self, f, slot):
        """The argv of a pipeline stage that is an external program, else None (CMD runs it,
        or says what is wrong)."""
        if slot is None:
            return None
        argv = f["t"].get(str(slot), [])
        if not argv or any(isinstance(a, dict) for a in argv):
            return None
        kind, argv = self.classify(argv)
        if kind != "ext" or argv[0] in UNSUPPORTED:
            return None
        return argv

    def op_PIPE(self, f, code, ins):
        node, slots, ps, end = ins[1], ins[2], ins[3], ins[4]
        st = self.br
        i = f["i"]
        if i is None:
            argvs = [self.external_argv(f, s) for s in slots]
            if None in argvs:
                p = f["t"][str(ps)] = {"st": [], "in": None}
                if any(a is not None for a in argvs):
                    p["x"], p["at"] = argvs, f["pc"]     # groups of external stages
                f["pc"] += 1
                return None
            for s in slots:
                f["t"].pop(str(s), None)
            i = f["i"] = {"op": "PIPE", "names": [a[0] for a in argvs]}
            stages = self.group_stages(f, code, node, {"x": argvs}, 0, len(argvs), i)
            return {"op": "exec", "cwd": st["cwd"], "stages": stages}
        got, res = self.take_result()
        if "notes" in i:                 # a notice written: the next, or the pipeline's end
            res = i["res"]
        else:
            self.finish_exec(i, res)
            i["notes"] = self.pipe_notices(node, res, i["names"])
            i["res"] = res
        while i["notes"]:
            req = self.not_found_notice(f, code, *i["notes"].pop(0))
            if req is not None:
                return req
        f["i"] = None
        f["pc"] = end
        names = i["names"]
        errs = {k: {"message": f"`{names[int(k)]}`: {v}"}
                for k, v in (res.get("errors") or {}).items()}
        self.pipeline_done(code, node, res["status"], errs)
        return None

    def group_stages(self, f, code, node, p, k, m, i) -> list:
        """The exec stages of external stages k..m-1, joined by pipes. The first reads the
        output of the fm stage before it (p["in"]); the last writes into the pipeline's
        output, or into a stream when an fm stage follows."""
        ex = Expander(self, code, f)
        n = len(node.commands)
        stages = []
        for j in range(k, m):
            cmd = node.commands[j]
            base = dict(self.fds())
            if j > k:
                base["0"] = {"kind": "pipe"}
            elif k > 0:
                b = self.state["bufs"].get(p.get("in")) or {"d": "", "p": 0}
                base["0"] = {"kind": "data", "d": b["d"][b["p"]:], "p": 0}
            if j < m - 1 or m < n:
                out = {"kind": "pipe" if j < m - 1 else "streamout"}
                base["1"] = out
                if j < len(node.stderr) and node.stderr[j]:
                    base["2"] = out
            assigns = self.eval_assigns(ex, cmd.assigns)
            stages.append(self.exec_stage(ex, p["x"][j], assigns, cmd.redirects, i, base))
        return stages

    def run_group(self, f, code, p, k, n, to):
        """Stage k starts a group of external stages: run it (or start it as a stream), then
        go on after the group's first stage (the others follow through grouped_stage)."""
        i = f["i"]
        node, slots = code.instrs[p["at"]][1], code.instrs[p["at"]][2]
        bufs = self.state["bufs"]
        if i is None:
            m = k
            while m < n and p["x"][m] is not None:
                m += 1
            for s in slots[k:m]:
                f["t"].pop(str(s), None)
            i = f["i"] = {"op": "PSTAGE", "m": m, "names": [a[0] for a in p["x"][k:m]]}
            req = {"op": "exec", "cwd": self.br["cwd"],
                   "stages": self.group_stages(f, code, node, p, k, m, i)}
            if m < n:
                req["stream"] = self.step_key()
                i["out"] = self.new_buf()
                bufs[i["out"]].update(s=req["stream"], q=dict(req), k=[k, m])
            return req
        got, res = self.take_result()
        if "notes" not in i:
            if "out" not in i:
                self.finish_exec(i, res)
            i["notes"] = self.pipe_notices(node, res, i["names"], k)
            i["res"] = res
        while i["notes"]:
            req = self.not_found_notice(f, code, *i["notes"].pop(0))
            if req is not None:
                return req
        res, m = i["res"], i["m"]
        errs = p.setdefault("errs", {})
        for j, e in (res.get("errors") or {}).items():
            errs[str(k + int(j))] = {"message": f"`{i['names'][int(j)]}`: {e}"}
        statuses = [s if isinstance(s, int) else 0
                    for s in res.get("status") or [0] * (m - k)]
        p["grp"] = {"k": k, "end": m, "st": statuses, "out": i.get("out")}
        f["i"] = None
        return self.grouped_stage(f, p, k, to)

    def grouped_stage(self, f, p, k, to):
        """A stage of a group that has run: its status, then straight to its end."""
        grp = p["grp"]
        self.br["status"] = grp["st"][k - grp["k"]]
        if k == grp["end"] - 1:
            del p["grp"]
            if grp["out"] is not None:
                p["out"] = grp["out"]
        f["pc"] = to
        return None

    def pipe_notices(self, node, res, names, first=0) -> list:
        """not_found_notice arguments for the stages of an external pipeline (or group from
        stage `first`) that could not start (each with its stage's stderr: the pipeline's,
        after its own redirects)."""
        out = []
        for k, err in sorted((res.get("errors") or {}).items(), key=lambda kv: int(kv[0])):
            j = first + int(k)
            cmd = node.commands[j]
            if (res.get("status") or [None] * (int(k) + 1))[int(k)] in (126, 127) and \
                    isinstance(cmd, A.SimpleCommand):
                if j < len(node.stderr) and node.stderr[j]:
                    continue             # `|&`: its stderr is the pipe
                out.append([cmd, cmd.redirects, f"`{names[int(k)]}`: {err}"])
        return out

    def pipeline_done(self, code, node, statuses, errs):
        st = self.br
        st["pipestatus"] = list(statuses)
        if st["opts"].get("pipefail"):
            status = 0
            failing = None
            for k, s in enumerate(statuses):
                if s != 0 and s != SIGPIPE_STATUS:
                    status, failing = s, k
        else:
            status = statuses[-1]
            failing = len(statuses) - 1 if status else None
        st["status"] = status
        if status != 0 and st["opts"].get("e"):
            cmd = node.commands[failing]
            e = errs.get(str(failing))
            if e and e.get("span"):
                sp = e["span"]
                span = A.Span(sp[0], sp[1], sp[2], sp[3])
                raise ShellError(status, e["message"], span)
            span = cmd.words[0].span if isinstance(cmd, A.SimpleCommand) and cmd.words \
                else cmd.span
            msg = e["message"] if e else \
                f"`{self.snippet(code, cmd.span)}` exited with status {status}"
            raise ShellError(status, msg + " (in a pipeline)" if not e else msg, span)
        if status != 0 and "traps" in st:
            self.err_trap(status)

    def op_PSTAGE(self, f, code, ins):
        ps, k, n, err, to = ins[1], ins[2], ins[3], ins[4], ins[5]
        p = f["t"][str(ps)]
        if "grp" in p:
            return self.grouped_stage(f, p, k, to)
        if p.get("x") and p["x"][k] is not None:
            return self.run_group(f, code, p, k, n, to)
        st = self.br
        f["b"].append({"t": "p", "to": to, "io": len(st["io"]), "ps": str(ps), "n": k})
        fds = dict(self.fds())
        if k > 0 and p["in"] is not None:
            kind = "stream" if self.stream_of(p) is not None else "bufin"
            fds["0"] = {"kind": kind, "id": p["in"]}
        if k < n - 1:
            bid = self.new_buf()
            p["out"] = bid
            fds["1"] = {"kind": "buf", "id": bid}
            if err:
                fds["2"] = fds["1"]
        self.push_io(fds)
        f["pc"] += 1
        return None

    def stream_of(self, p: dict):
        """The holder of the stream the pipeline's current fm stage reads, else None."""
        h = self.state["bufs"].get(p.get("in")) if p.get("in") is not None else None
        return h if h is not None and "s" in h else None

    def op_PSTAGE_END(self, f, code, ins):
        p = f["t"][str(ins[1])]
        if f["i"] is None:
            p["st"].append(self.br["status"])
        if self.stream_of(p) is not None:
            req = self.close_stream(f, p)
            if req is not None:
                return req
        if p["in"] is not None:
            self.free_buf(p["in"])
        p["in"] = p.pop("out", None)
        f["pc"] += 1
        leave = p.pop("leave", None)
        if leave is not None:            # break/return/cancel out of the stage, delayed
            f["t"].pop(str(ins[1]), None)
            if p["in"] is not None:
                self.free_buf(p["in"])
            raise Unwind(leave["k"], leave["v"])
        return None

    def close_stream(self, f, p):
        """End the stream the stage read (`stream_close`): its stages' statuses replace the
        placeholders. A stream gone with a crashed runner has the statuses its last read
        brought (its end), else 141 each, as when it is stopped."""
        h = self.stream_of(p)
        if f["i"] is None:
            f["i"] = {"op": "PSTAGE_END"}
            return {"op": "stream_close", "sid": h["s"], "drain": bool(h.get("eof"))}
        got, res = self.take_result()
        k, m = h["k"]
        statuses = h.get("st") if res.get("gone") else res.get("status")
        if not isinstance(statuses, list) or len(statuses) != m - k:
            statuses = [SIGPIPE_STATUS] * (m - k)
        p["st"][k:m] = statuses
        f["i"] = None
        return None

    def leave_pipeline(self, f, b: dict, kind: str, value) -> bool:
        """Unwinding out of an fm stage altogether (break, return, cancel): a stream it reads
        is closed first (at the stage's end, which then goes on unwinding): True. Else its
        buffers are freed: False."""
        p = f["t"].get(b["ps"]) or {}
        if self.stream_of(p) is not None:
            p["leave"] = {"k": kind, "v": value}
            f["pc"] = b["to"]
            return True
        f["t"].pop(b["ps"], None)
        for bid in (p.get("in"), p.get("out")):
            if bid is not None:
                self.free_buf(bid)
        return False

    def op_PIPE_END(self, f, code, ins):
        node, ps = ins[1], ins[2]
        p = f["t"].pop(str(ps))
        if p["in"] is not None:
            self.free_buf(p["in"])
        f["pc"] += 1
        self.pipeline_done(code, node, p["st"], {k: v for k, v in (p.get("errs") or {}).items()
                                                 if v})
        return None
