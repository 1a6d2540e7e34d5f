"""`bench.profile_server --cpu/--perf`: CPU per request, and perf samples by bytecode handler."""

from __future__ import annotations

import os
import shutil
import sysconfig
import time
from pathlib import Path

import pytest

from bench.profile_server import (
    by_handler,
    cpu_ns,
    eval_loop_handlers,
    handler_at,
    opcode_labels,
    perf_samples,
)

# The shape of `objdump --dwarf=info` around two of the loop's labels and one of the
# regular expression engine's (which must not be taken for a bytecode's).
DWARF = """\
 <2><4663b2>: Abbrev Number: 91 (DW_TAG_label)
    <4663b3>   DW_AT_name        : (indirect string, offset: 0x22b2b): TARGET_POP_TOP
    <4663b7>   DW_AT_decl_file   : 1
    <4663bc>   DW_AT_decl_line   : 1893
    <4663bd>   DW_AT_decl_column : 9
 <2><4663c3>: Abbrev Number: 91 (DW_TAG_label)
    <4663c4>   DW_AT_name        : (indirect string, offset: 0x21533): TARGET_LOAD_ATTR_SLOT
    <4663c8>   DW_AT_decl_file   : 1
    <4663cd>   DW_AT_decl_line   : 3561
 <2><4664c3>: Abbrev Number: 91 (DW_TAG_label)
    <4664c4>   DW_AT_name        : (indirect string, offset: 0x21999): TARGET_SRE_OP_CHARSET
    <4664c8>   DW_AT_decl_file   : 7
    <4664cd>   DW_AT_decl_line   : 2000
 <2><4663d4>: Abbrev Number: 12 (DW_TAG_variable)
    <4663d5>   DW_AT_name        : (indirect string, offset: 0x1200): TARGET_NOT_A_LABEL
    <4663dd>   DW_AT_decl_line   : 10
"""


def test_bytecode_handlers_are_read_from_the_labels_of_the_loop_only() -> None:
    labels = opcode_labels(DWARF.splitlines())
    assert labels == [(1893, "POP_TOP"), (3561, "LOAD_ATTR_SLOT")]


def test_a_source_line_belongs_to_the_handler_declared_last_before_it() -> None:
    labels = [(1893, "POP_TOP"), (3561, "LOAD_ATTR_SLOT")]
    assert handler_at(labels, 1893) == "POP_TOP"
    assert handler_at(labels, 3560) == "POP_TOP"
    assert handler_at(labels, 3575) == "LOAD_ATTR_SLOT"
    assert handler_at(labels, 1800).startswith("entry")


def test_samples_of_the_loop_are_summed_by_handler_and_other_files_kept_apart() -> None:
    labels = [(1893, "POP_TOP"), (3561, "LOAD_ATTR_SLOT")]
    lines = {"ceval.c:3562": 3, "ceval.c:3575": 2, "ceval.c:1900": 1, "object.h:502": 4}
    assert by_handler(lines, labels) == {"LOAD_ATTR_SLOT": 5, "POP_TOP": 1, "object.h:502": 4}


def test_perf_report_lines_are_read_whatever_their_column_widths() -> None:
    report = (
        "# Samples: 3K of event 'cpu-clock'\n"
        "#\n"
        "      1200  libpython3.11.so.1.0          [.] _PyEval_EvalFrameDefault\n"
        "        30  [kernel.kallsyms]  [k] _raw_spin_unlock_irqrestore\n"
        "         5  libpython3.11.so.1.0 [.] _PyEval_EvalFrameDefault\n"
        "\n"
    )
    assert perf_samples(report) == {
        "libpython3.11.so.1.0 [.] _PyEval_EvalFrameDefault": 1205,
        "[kernel.kallsyms] [k] _raw_spin_unlock_irqrestore": 30,
    }


@pytest.mark.skipif(
    not Path("/proc/self/schedstat").exists(), reason="needs Linux /proc/PID/schedstat"
)
def test_cpu_time_of_a_process_grows_with_the_work_it_does() -> None:
    before = cpu_ns(os.getpid())
    deadline = time.thread_time() + 0.05
    while time.thread_time() < deadline:  # 50 ms of CPU in this thread
        pass
    spent = cpu_ns(os.getpid()) - before
    assert 40_000_000 <= spent < 5_000_000_000


@pytest.mark.skipif(
    shutil.which("objdump") is None or not sysconfig.get_config_var("INSTSONAME"),
    reason="needs objdump and a shared libpython",
)
def test_this_interpreters_loop_handlers_are_found_when_it_has_debug_information() -> None:
    labels = eval_loop_handlers()
    if not labels:
        pytest.skip("this libpython carries no debug information")
    names = {name for _, name in labels}
    assert {"LOAD_FAST", "LOAD_ATTR", "RETURN_VALUE"} <= names
    assert [line for line, _ in labels] == sorted(line for line, _ in labels)


def test_callgrinds_simulated_totals_are_read_by_event_name() -> None:
    from bench.profile_server import simulated_events

    log = (
        "==1== Events    : Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim\n"
        "==1== Collected : 1000 300 200 12 40 7 1 2 3 150 11 30 9\n"
    )
    events = simulated_events(log)
    assert (events["Ir"], events["I1mr"], events["D1mr"], events["Bcm"], events["Bim"]) == (
        1000,
        12,
        40,
        11,
        9,
    )
