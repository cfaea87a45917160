// SPDX-License-Identifier: Apache-2.0
// python: probes without root: the probes.yaml model (every field, every
// rejected input as one exact located line), the source scanner against
// CPython's own parser (ast), command lines of Python processes, the
// interpreters on the image against nm/readelf and the interpreters themselves,
// and the attach plan over tests/fixtures/python/py_worker.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../test_util.h"
#include "attach/plan.h"
#include "config/config.h"
#include "python/interp.h"
#include "python/procs.h"
#include "python/source.h"

namespace insa {
namespace {

using config::Cmp;
using config::ValueRef;
using insa::test::run_command;

constexpr const char* kFile = "probes.yaml";
const std::string kWorkerPy = std::string(INSA_SOURCE_DIR) + "/tests/fixtures/python/py_worker.py";

std::string at(const std::string& text, const std::string& needle, int nth = 1) {
  std::string lc = insa::test::line_col(text, needle, nth);
  if (lc == "?:?") ADD_FAILURE() << "'" << needle << "' (#" << nth << ") not in the test text";
  return lc;
}

/// "probes.yaml:L:C: what", L:C where `needle` is in `text`.
std::string msg(const std::string& text, const std::string& needle, const std::string& what, int nth = 1) {
  return std::string(kFile) + ":" + at(text, needle, nth) + ": " + what;
}

std::string error_of(const std::string& text) {
  auto r = config::parse_config(text, kFile);
  return r.ok() ? "<accepted>" : r.error().message;
}

const std::string kMetrics = R"(metrics:
  - {name: insa_py_calls_total, type: counter, labels: [status]}
  - {name: insa_py_size_bytes, type: histogram, buckets: [10, 100]}
probes:
)";

// ---------------------------------------------------------------- config

TEST(PythonConfig, ScriptAndModuleProbesParse) {
  const std::string text = kMetrics + R"(  - name: by_script
    python: {script: app/worker.py, function: Agent.handle_request, interpreter: /usr/bin/python3.11, source: src/worker.py}
    status:
      - {if: exception == TimeoutError, then: timeout}
      - {if: ret == None, then: empty}
      - {if: exception, then: error}
      - {else: ok}
    metrics:
      - {metric: insa_py_calls_total, labels: {status: $status}}
      - {metric: insa_py_size_bytes, observe: $request:len, if: ret != None}
  - name: by_module
    pid: 4242
    python:
      module: pkg.worker
      function: outer.<locals>.inner
      interpreter: [/usr/bin/python3.11, /opt/py/lib/libpython3.12.so.1.0]
    metrics:
      - {metric: insa_py_size_bytes, observe: $arg2:len}
  - name: with_file
    python: {module: pkg, file: pkg/__main__.py, function: main}
    metrics:
      - {metric: insa_py_calls_total, labels: {status: $exception}}
)";
  auto c = config::parse_config(text, kFile);
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->probes.size(), 3u);

  const auto& s = c->probes[0];
  ASSERT_TRUE(s.python.has_value());
  EXPECT_EQ(s.python->script, "app/worker.py");
  EXPECT_EQ(s.python->module, "");
  EXPECT_EQ(s.python->file, "app/worker.py");  // default: the script
  EXPECT_EQ(s.python->function, "Agent.handle_request");
  EXPECT_EQ(s.python->interpreters, std::vector<std::string>{"/usr/bin/python3.11"});
  EXPECT_EQ(s.python->source, "src/worker.py");
  EXPECT_EQ(s.binary, "");
  EXPECT_EQ(s.function, "");
  EXPECT_EQ(s.python->mark.str(), std::string(kFile) + ":" + at(text, "{script: app"));
  EXPECT_EQ(s.python->function_mark.str(), std::string(kFile) + ":" + at(text, "Agent.handle_request"));
  EXPECT_TRUE(s.tracked());

  ASSERT_EQ(s.status.size(), 3u);
  EXPECT_EQ(s.default_status, "ok");
  // exception == TimeoutError: the FNV-1a of the name, as the kernel hashes tp_name.
  EXPECT_EQ(s.status[0].lhs.kind, ValueRef::Kind::Exception);
  EXPECT_EQ(s.status[0].cmp, Cmp::Eq);
  EXPECT_EQ(s.status[0].rhs_name, "TimeoutError");
  EXPECT_EQ(s.status[0].rhs, static_cast<int64_t>(python::name_hash("TimeoutError")));
  EXPECT_EQ(s.status[0].rhs, 2259313870);  // FNV-1a 32 of "TimeoutError", computed independently
  EXPECT_EQ(s.status[0].status, "timeout");
  // ret == None: "the kernel's ret_none flag != 0".
  EXPECT_EQ(s.status[1].lhs.kind, ValueRef::Kind::RetNone);
  EXPECT_EQ(s.status[1].cmp, Cmp::Ne);
  EXPECT_EQ(s.status[1].rhs, 0);
  EXPECT_EQ(s.status[1].status, "empty");
  // Bare `exception`: the call raised (hash != 0).
  EXPECT_EQ(s.status[2].lhs.kind, ValueRef::Kind::Exception);
  EXPECT_EQ(s.status[2].cmp, Cmp::Ne);
  EXPECT_EQ(s.status[2].rhs, 0);

  ASSERT_EQ(s.updates.size(), 2u);
  const auto& obs = s.updates[1];
  EXPECT_EQ(obs.value.kind, ValueRef::Kind::ArgLen);
  EXPECT_EQ(obs.value.name, "request");
  EXPECT_EQ(obs.value.str(), "$request:len");
  ASSERT_TRUE(obs.cond.has_value());
  // ret != None: "ret_none == 0".
  EXPECT_EQ(obs.cond->lhs.kind, ValueRef::Kind::RetNone);
  EXPECT_EQ(obs.cond->cmp, Cmp::Eq);
  EXPECT_EQ(obs.cond->rhs, 0);

  const auto& m = c->probes[1];
  ASSERT_TRUE(m.python.has_value());
  EXPECT_EQ(m.pid, 4242);
  EXPECT_EQ(m.python->script, "");
  EXPECT_EQ(m.python->module, "pkg.worker");
  EXPECT_EQ(m.python->file, "pkg/worker.py");  // default: the module's path
  EXPECT_EQ(m.python->function, "outer.<locals>.inner");
  EXPECT_EQ(m.python->interpreters,
            (std::vector<std::string>{"/usr/bin/python3.11", "/opt/py/lib/libpython3.12.so.1.0"}));
  EXPECT_EQ(m.python->source, "");
  EXPECT_EQ(m.updates[0].value.kind, ValueRef::Kind::ArgLen);
  EXPECT_EQ(m.updates[0].value.arg, 2);
  EXPECT_EQ(m.updates[0].value.name, "");

  const auto& f = c->probes[2];
  EXPECT_EQ(f.python->module, "pkg");
  EXPECT_EQ(f.python->file, "pkg/__main__.py");
  EXPECT_EQ(f.python->function, "main");
  EXPECT_EQ(f.updates[0].labels[0].value.kind, ValueRef::Kind::Exception);
  EXPECT_EQ(f.updates[0].labels[0].value.len, 32);
}

TEST(PythonConfig, ExceptionHashIsTheNameAfterTheLastDot) {
  EXPECT_EQ(python::name_hash("TimeoutError"), 2259313870u);
  EXPECT_EQ(python::name_hash("asyncio.exceptions.TimeoutError"), 2259313870u);
  EXPECT_EQ(python::name_hash("CancelledError"), 1016650026u);
  EXPECT_EQ(python::name_hash(""), 2166136261u);  // FNV offset basis: never 0
}

TEST(PythonConfig, ScriptAndModuleAreExclusive) {
  const std::string both = kMetrics + R"(  - name: p
    python: {script: w.py, module: pkg.w, function: f}
    metrics: [{metric: insa_py_calls_total, labels: {status: x}}]
)";
  EXPECT_EQ(error_of(both),
            msg(both, "{script: w.py",
                "probe 'p': 'python' needs exactly one of 'script' (e.g. worker.py) or 'module' (e.g. pkg.worker)"));
  const std::string neither = kMetrics + R"(  - name: p
    python:
      function: f
    metrics: [{metric: insa_py_calls_total, labels: {status: x}}]
)";
  EXPECT_EQ(error_of(neither),
            msg(neither, "function: f",
                "probe 'p': 'python' needs exactly one of 'script' (e.g. worker.py) or 'module' (e.g. pkg.worker)"));
}

TEST(PythonConfig, BadQualifiedNames) {
  for (const std::string bad : {"Agent..handle", "Agent.handle()", "1st", "outer.<local>.inner", "a-b"}) {
    const std::string text = kMetrics + "  - name: p\n    python: {script: w.py, function: \"" + bad +
                             "\"}\n    metrics: [{metric: insa_py_calls_total, labels: {status: x}}]\n";
    EXPECT_EQ(error_of(text),
              msg(text, "\"" + bad,
                  "'" + bad + "' is not a qualified name such as handle, Agent.handle or outer.<locals>.inner"))
        << bad;
  }
  const std::string missing = kMetrics + R"(  - name: p
    python: {script: w.py}
    metrics: [{metric: insa_py_calls_total, labels: {status: x}}]
)";
  EXPECT_EQ(error_of(missing), msg(missing, "{script", "probe 'p''s python needs 'function'"));
}

TEST(PythonConfig, NativeKeysInAPythonProbe) {
  for (const std::string key : {"binary: /usr/bin/python3.11", "function: handle", "exit: uretprobe"}) {
    const std::string text = kMetrics + "  - name: p\n    python: {script: w.py, function: f}\n    " + key +
                             "\n    metrics: [{metric: insa_py_calls_total, labels: {status: x}}]\n";
    const std::string k = key.substr(0, key.find(':'));
    EXPECT_EQ(
        error_of(text),
        msg(text, key.substr(k.size() + 2),
            "probe 'p': '" + k + "' does not apply to a python: probe (the interpreter is found from the process)"))
        << key;
  }
}

TEST(PythonConfig, PythonOnlyValuesInANativeProbe) {
  struct Case {
    std::string update;  // one metrics entry
    std::string at;      // where the error points
    std::string what;
  };
  const std::string values = "' is for python: probes (native probes use $argN, $argN:str, $ret, $duration, $status, $pid)";
  const std::string conds = "' is for python: probes (native conditions compare ret, duration or argN with an integer)";
  const std::vector<Case> cases = {
      {"{metric: insa_py_size_bytes, observe: $arg2:len}", "$arg2:len", "'$arg2:len" + values},
      {"{metric: insa_py_calls_total, labels: {status: $exception}}", "$exception", "'$exception" + values},
      {"{metric: insa_py_calls_total, labels: {status: $ret:str}}", "$ret:str", "'$ret:str" + values},
      // a name is a typo in a native probe as likely as a Python parameter: the plain message
      {"{metric: insa_py_size_bytes, observe: $request}", "$request",
       "'$request' is not a value ($argN, $argN:str, $ret, $duration, $status, $pid)"},
      {"{metric: insa_py_size_bytes, observe: $ret:len}", "$ret:len", "'$ret:len" + values},
      {"{metric: insa_py_calls_total, labels: {status: x}, if: exception == TimeoutError}", "exception ==",
       "'exception" + conds},
      {"{metric: insa_py_calls_total, labels: {status: x}, if: ret == None}", "ret == None", "'None" + conds},
  };
  for (const auto& c : cases) {
    const std::string text =
        kMetrics + "  - name: n\n    binary: /bin/true\n    function: main\n    metrics:\n      - " + c.update + "\n";
    EXPECT_EQ(error_of(text), msg(text, c.at, c.what)) << c.update;
  }
  const std::string rule = kMetrics + R"(  - name: n
    binary: /bin/true
    function: main
    status:
      - {if: exception == ValueError, then: error}
    metrics: [{metric: insa_py_calls_total, labels: {status: $status}}]
)";
  EXPECT_EQ(error_of(rule), msg(rule, "exception == ValueError", "'exception" + conds));
}

TEST(PythonConfig, NativeOnlyValuesAndComparisonsInAPythonProbe) {
  const std::string i32 = kMetrics + R"(  - name: p
    python: {script: w.py, function: f}
    metrics: [{metric: insa_py_size_bytes, observe: $ret:i32}]
)";
  EXPECT_EQ(error_of(i32), msg(i32, "name: p", "probe 'p': ':i32' is for native probes; Python ints are read whole"));
  const std::string span = kMetrics + R"(  - name: p
    python: {script: w.py, function: f}
    metrics: [{metric: insa_py_size_bytes, span_end: s, span_key: $arg1}]
  - name: q
    binary: /bin/true
    function: main
    metrics: [{metric: insa_py_size_bytes, span_begin: s, span_key: $arg1}]
)";
  EXPECT_EQ(error_of(span), msg(span, "name: p", "probe 'p': spans are for native probes"));
  const std::string lt = kMetrics + R"(  - name: p
    python: {script: w.py, function: f}
    status:
      - {if: exception < TimeoutError, then: error}
    metrics: [{metric: insa_py_calls_total, labels: {status: $status}}]
)";
  EXPECT_EQ(error_of(lt),
            msg(lt, "exception <", "an exception is compared with == or !=, e.g. 'exception == TimeoutError'"));
  const std::string none_lt = kMetrics + R"(  - name: p
    python: {script: w.py, function: f}
    status:
      - {if: ret > None, then: error}
    metrics: [{metric: insa_py_calls_total, labels: {status: $status}}]
)";
  EXPECT_EQ(error_of(none_lt), msg(none_lt, "ret > None", "None is compared with == or !=, e.g. 'ret == None'"));
}

// ---------------------------------------------------------------- source scanner

const std::string kSource = R"PY(#!/usr/bin/env python3
"""Module docstring.
def not_a_function(x):
    yield x
"""
import functools

# def commented_out(a):
SQL = """
def inside_string():
"""


class Outer:
    """Class doc with def in it: def fake(self):"""
    label = "def nope(): yield"

    class Inner:
        def method(self, a, b=2):
            return a + b

    def __init__(self, kind: str = "x,y", *args, **kwargs):
        self.kind = kind

    @functools.lru_cache(maxsize=None)
    def cached(self, key):
        return key

    @staticmethod
    def stat(x, /, y, *, z=3):
        return x

    async def handle(
        self,
        request: dict[str, int],
        mode="a, b",  # a comment with def x(
        *extra,
        timeout: float = 1.0,
        **options,
    ) -> int:
        text = """
yield inside a string does not make a generator
"""
        return 0

    async def stream(self, n):
        for i in range(n):
            yield i

    def cont(self, a, \
             b):
        return (a,
  b)

    def after(self):
        return 'yield'


def outer(a, b):
    def inner(c):
        return c

    class Local:
        def m(self):
            return 1
    return inner


def gen(items):
    total = [
        x for x in items
    ]
    yield from total


def single(): yield 1


async def top_level(session, *, retries=3):
    await session.close()
)PY";

/// "qualname line async generator p1,p2": the form both the scanner and CPython's ast give.
std::string row(const python::PyFunction& f) {
  std::string params;
  for (const auto& p : f.params) params += (params.empty() ? "" : ",") + p;
  return f.qualname + " " + std::to_string(f.line) + " " + (f.is_async ? "1" : "0") + " " +
         (f.is_generator ? "1" : "0") + " " + params;
}

TEST(PythonSource, ScanSourceExact) {
  const std::vector<std::string> want = {
      "Outer.Inner.method 19 0 0 self,a,b",
      "Outer.__init__ 22 0 0 self,kind",
      "Outer.cached 26 0 0 self,key",
      "Outer.stat 30 0 0 x,y,z",
      "Outer.handle 33 1 0 self,request,mode,timeout",
      "Outer.stream 46 1 1 self,n",
      "Outer.cont 50 0 0 self,a,b",
      "Outer.after 55 0 0 self",
      "outer 59 0 0 a,b",
      "outer.<locals>.inner 60 0 0 c",
      "outer.<locals>.Local.m 64 0 0 self",
      "gen 69 0 1 items",
      "single 76 0 1 ",
      "top_level 79 1 0 session,retries",
  };
  std::vector<std::string> got;
  for (const auto& f : python::scan_source(kSource)) got.push_back(row(f));
  EXPECT_EQ(got, want);
}

/// The same rows from CPython's own parser (ast), for `path`.
std::vector<std::string> ast_rows(const std::string& path) {
  const std::string script = "/tmp/insa-unit-ast-" + std::to_string(getpid()) + ".py";
  std::ofstream(script) << R"PY(import ast, sys
def walk(node, prefix, out):
    for ch in ast.iter_child_nodes(node):
        if isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef)):
            gen = [False]
            def scan(n):
                for c in ast.iter_child_nodes(n):
                    if isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                        continue
                    if isinstance(c, (ast.Yield, ast.YieldFrom)):
                        gen[0] = True
                    scan(c)
            scan(ch)
            a = ch.args
            params = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            out.append((ch.lineno, "%s%s %d %d %d %s" % (prefix, ch.name, ch.lineno,
                        isinstance(ch, ast.AsyncFunctionDef), gen[0], ",".join(params))))
            walk(ch, prefix + ch.name + ".<locals>.", out)
        elif isinstance(ch, ast.ClassDef):
            walk(ch, prefix + ch.name + ".", out)
        else:
            walk(ch, prefix, out)
out = []
walk(ast.parse(open(sys.argv[1]).read()), "", out)
for _, r in sorted(out):
    print(r)
)PY";
  std::string out = run_command("/usr/bin/python3.11 " + script + " " + path);
  std::remove(script.c_str());
  std::vector<std::string> rows;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) rows.push_back(l);
  return rows;
}

TEST(PythonSource, AgreesWithCPythonsAst) {
  const std::string path = "/tmp/insa-unit-source-" + std::to_string(getpid()) + ".py";
  std::ofstream(path) << kSource;
  auto want = ast_rows(path);
  std::remove(path.c_str());
  ASSERT_EQ(want.size(), 14u) << "python3.11 could not parse the fixture";
  std::vector<std::string> got;
  for (const auto& f : python::scan_source(kSource)) got.push_back(row(f));
  EXPECT_EQ(got, want);

  // And on the root tests' worker.
  auto funcs = python::scan_file(kWorkerPy);
  ASSERT_TRUE(funcs.ok()) << funcs.error().message;
  got.clear();
  for (const auto& f : *funcs) got.push_back(row(f));
  EXPECT_EQ(got, ast_rows(kWorkerPy));
  EXPECT_EQ(got.size(), 16u);
}

TEST(PythonSource, MissingFile) {
  auto r = python::scan_file("/nonexistent/worker.py");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "cannot read Python source '/nonexistent/worker.py': No such file or directory");
}

TEST(PythonSource, UnterminatedInputIsTolerated) {
  auto f = python::scan_source("def a(x,\n  y");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(row(f[0]), "a 1 0 0 x,y");
  auto g = python::scan_source("s = '''\ndef hidden():\n");
  EXPECT_TRUE(g.empty());
}

// ---------------------------------------------------------------- command lines

struct Cmd {
  std::vector<std::string> argv;
  bool ok;
  std::string script, module;
};

TEST(PythonCmdline, ScriptsModulesAndOptions) {
  const std::vector<Cmd> cases = {
      {{"python3", "-u", "worker.py"}, true, "worker.py", ""},
      {{"/usr/bin/python3.11", "worker.py", "--go", "/tmp/x"}, true, "worker.py", ""},
      {{"python3", "-m", "pkg.mod"}, true, "", "pkg.mod"},
      {{"python3", "-X", "dev", "-W", "error", "script.py", "a", "b"}, true, "script.py", ""},
      {{"python3", "-Xdev", "-Werror", "script.py"}, true, "script.py", ""},
      {{"python3", "-c", "print(1)"}, false, "", ""},
      {{"python3", "-uc", "print(1)"}, false, "", ""},
      {{"python3", "-um", "pkg"}, true, "", "pkg"},
      {{"python3", "-mpkg.mod", "x.py"}, true, "", "pkg.mod"},
      {{"python3", "-B", "-O", "-um", "pkg.mod", "-c", "x"}, true, "", "pkg.mod"},
      {{"python3", "--", "script.py", "-m", "x"}, true, "script.py", ""},
      {{"python3", "-u", "--", "-odd.py"}, true, "-odd.py", ""},
      {{"python3", "--"}, false, "", ""},
      {{"python3", "--", "-"}, false, "", ""},
      {{"python3", "-"}, false, "", ""},
      {{"python3", "-u", "-", "arg"}, false, "", ""},
      {{"python3", "--check-hash-based-pycs", "always", "w.py"}, true, "w.py", ""},
      {{"python3", "-I", "--version"}, false, "", ""},
      {{"python3"}, false, "", ""},
      {{"python3", "-m"}, false, "", ""},
      {{}, false, "", ""},
  };
  for (const auto& c : cases) {
    std::string script, module, shown;
    for (const auto& a : c.argv) shown += a + " ";
    EXPECT_EQ(python::parse_cmdline(c.argv, &script, &module), c.ok) << shown;
    EXPECT_EQ(script, c.script) << shown;
    EXPECT_EQ(module, c.module) << shown;
  }
}

TEST(PythonCmdline, PathSuffixMatch) {
  using python::path_suffix_match;
  EXPECT_TRUE(path_suffix_match("/srv/app/worker.py", "worker.py"));
  EXPECT_TRUE(path_suffix_match("/srv/app/worker.py", "app/worker.py"));
  EXPECT_TRUE(path_suffix_match("/srv/app/worker.py", "/app/worker.py"));
  EXPECT_TRUE(path_suffix_match("/srv/app/worker.py", "/srv/app/worker.py"));
  EXPECT_TRUE(path_suffix_match("worker.py", "worker.py"));
  EXPECT_FALSE(path_suffix_match("/srv/app/myworker.py", "worker.py"));
  EXPECT_FALSE(path_suffix_match("/srv/app/worker.py", "pp/worker.py"));
  EXPECT_FALSE(path_suffix_match("/srv/app/worker.py", "/srv/app/worker.py.bak"));
  EXPECT_FALSE(path_suffix_match("/srv/app/worker.pyc", "worker.py"));
  EXPECT_FALSE(path_suffix_match("/srv/app/worker.py", ""));
  EXPECT_FALSE(path_suffix_match("", "worker.py"));
  EXPECT_FALSE(path_suffix_match("orker.py", "worker.py"));
  EXPECT_FALSE(path_suffix_match("/other/worker.py", "/srv/worker.py"));
}

/// A fake /proc with one process: cmdline, cwd, exe and maps.
class PythonFakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = "/tmp/insa-unit-proc-" + std::to_string(getpid());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void add(int pid, const std::vector<std::string>& argv, const std::string& cwd, const std::string& exe,
           const std::string& maps) {
    const std::string dir = root_ + "/" + std::to_string(pid);
    std::filesystem::create_directories(dir);
    std::ofstream cmd(dir + "/cmdline", std::ios::binary);
    for (const auto& a : argv) cmd << a << '\0';
    cmd.close();
    std::filesystem::create_directory_symlink(cwd, dir + "/cwd");
    std::filesystem::create_symlink(exe, dir + "/exe");
    std::ofstream(dir + "/maps") << maps;
  }
  std::string root_;
};

TEST_F(PythonFakeProc, DescribesScriptsModulesAndOthers) {
  add(100, {"/usr/bin/python3.11", "-u", "./app/../app/worker.py", "--go", "x"}, "/srv", "/usr/bin/python3.11",
      "00400000-0041f000 r--p 00000000 08:01 42 /usr/bin/python3.11\n"
      "0041f000-006d2000 r-xp 0001f000 08:01 42 /usr/bin/python3.11\n");
  add(101, {"/opt/py/bin/python3.12", "-m", "pkg.mod"}, "/work", "/opt/py/bin/python3.12",
      "55d0c0000000-55d0c0001000 r--p 00000000 08:01 7 /opt/py/bin/python3.12\n"
      "7f0000000000-7f0000106000 r--p 00000000 08:01 9 /opt/py/lib/libpython3.12.so.1.0\n"
      "7f0000106000-7f0000379000 r-xp 00106000 08:01 9 /opt/py/lib/libpython3.12.so.1.0\n");
  add(102, {"/usr/bin/sleep", "30"}, "/", "/usr/bin/sleep", "00400000-00401000 r-xp 00000000 08:01 5 /usr/bin/sleep\n");
  add(103, {"python3", "-c", "pass"}, "/", "/usr/bin/python3.11", "");

  auto a = python::describe_process(100, root_);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->script, "./app/../app/worker.py");
  EXPECT_EQ(a->script_path, "/srv/app/worker.py");  // normalized, as a config names it
  EXPECT_EQ(a->module, "");
  EXPECT_EQ(a->interpreter, "/usr/bin/python3.11");
  EXPECT_EQ(a->interpreter_base, 0x400000u);  // zeroed by the caller for a non-PIE executable

  auto b = python::describe_process(101, root_);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->script_path, "");
  EXPECT_EQ(b->module, "pkg.mod");
  EXPECT_EQ(b->interpreter, "/opt/py/lib/libpython3.12.so.1.0");
  EXPECT_EQ(b->interpreter_base, 0x7f0000000000u);

  EXPECT_FALSE(python::describe_process(102, root_).has_value());
  auto d = python::describe_process(103, root_);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->script, "");
  EXPECT_EQ(d->module, "");
  EXPECT_FALSE(python::describe_process(104, root_).has_value());

  std::vector<int> pids;
  for (const auto& p : python::scan_processes(root_)) pids.push_back(p.pid);
  std::sort(pids.begin(), pids.end());
  EXPECT_EQ(pids, (std::vector<int>{100, 101, 103}));
}

// ---------------------------------------------------------------- interpreters

std::string pyenv(const std::string& version) {
  const char* root = std::getenv("PYENV_ROOT");
  const char* home = std::getenv("HOME");
  std::string base = root ? root : std::string(home ? home : "/root") + "/.pyenv";
  return base + "/versions/" + version + "/bin/python" + version.substr(0, version.rfind('.'));
}

uint64_t hex_value(const std::string& s) { return std::stoull(s, nullptr, 16); }

/// Ground truth from nm: a defined dynamic symbol's address.
uint64_t nm_symbol(const std::string& file, const std::string& sym) {
  std::istringstream in(run_command("nm -D --defined-only " + file));
  for (std::string addr, type, name; in >> addr >> type >> name;)
    if (name == sym) return hex_value(addr);
  ADD_FAILURE() << sym << " not in nm -D " << file;
  return 0;
}

/// Ground truth from readelf: the file offset of `vaddr` (the LOAD segment holding it).
uint64_t readelf_offset(const std::string& file, uint64_t vaddr) {
  std::istringstream in(run_command("readelf -lW " + file));
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string type, off, va, pa, filesz;
    if (!(ls >> type >> off >> va >> pa >> filesz) || type != "LOAD") continue;
    if (vaddr >= hex_value(va) && vaddr < hex_value(va) + hex_value(filesz))
      return vaddr - hex_value(va) + hex_value(off);
  }
  ADD_FAILURE() << "no LOAD segment of " << file << " holds " << vaddr;
  return 0;
}

/// Ground truth from the interpreter itself: sys.hexversion and "3.11.2".
std::pair<uint32_t, std::string> run_version(const std::string& python) {
  std::istringstream in(run_command(python + " -c 'import sys; print(sys.hexversion, sys.version.split()[0])'"));
  uint32_t hex = 0;
  std::string str;
  in >> hex >> str;
  return {hex, str};
}

struct InterpCase {
  std::string launcher;  // what a user names
  std::string file;      // where _PyEval_EvalFrameDefault is
  bool pie;
};

void expect_interpreter(const InterpCase& c, const std::string& minor) {
  ASSERT_EQ(access(c.launcher.c_str(), X_OK), 0)
      << c.launcher << " is missing: the image's interpreters are part of this test";
  auto in = python::inspect(c.launcher);
  ASSERT_TRUE(in.ok()) << in.error().message;
  auto [hex, str] = run_version(c.launcher);
  EXPECT_EQ(in->path, c.file);
  EXPECT_EQ(in->version, hex);
  EXPECT_EQ(in->version_str(), str);
  EXPECT_EQ(str.rfind(minor + ".", 0), 0u) << str;
  EXPECT_EQ(in->layout.version, hex);
  EXPECT_EQ(in->pie, c.pie);
  const uint64_t eval = nm_symbol(c.file, "_PyEval_EvalFrameDefault");
  EXPECT_EQ(in->eval_vaddr, eval);
  EXPECT_EQ(in->eval_offset, readelf_offset(c.file, eval));
  EXPECT_EQ(in->runtime_vaddr, nm_symbol(c.file, "_PyRuntime"));
  EXPECT_EQ(in->layout.none_delta, static_cast<int64_t>(nm_symbol(c.file, "_Py_NoneStruct") - eval));
}

TEST(PythonInterp, DebianPython311) {
  expect_interpreter({"/usr/bin/python3.11", "/usr/bin/python3.11", false}, "3.11");
}

TEST(PythonInterp, PyenvLaunchersLeadToLibpython) {
  for (const auto& [version, minor] : {std::pair<std::string, std::string>{"3.12.1", "3.12"}, {"3.13.0", "3.13"}}) {
    const std::string launcher = pyenv(version);
    const std::string lib = launcher.substr(0, launcher.rfind("/bin/")) + "/lib/libpython" + minor + ".so.1.0";
    SCOPED_TRACE(launcher);
    expect_interpreter({launcher, lib, true}, minor);
    // The library itself, named directly, is the same interpreter.
    auto direct = python::inspect(lib);
    ASSERT_TRUE(direct.ok()) << direct.error().message;
    EXPECT_EQ(direct->path, lib);
  }
}

TEST(PythonInterp, RefusesOldAndNonInterpreters) {
  const std::string old = pyenv("3.10.13");
  ASSERT_EQ(access(old.c_str(), X_OK), 0) << old << " is missing: the image's interpreters are part of this test";
  auto r = python::inspect(old);
  ASSERT_FALSE(r.ok());
  const std::string lib = old.substr(0, old.rfind("/bin/")) + "/lib/libpython3.10.so.1.0";
  EXPECT_EQ(r.error().message,
            lib + " is not a CPython 3.11+ interpreter (no _PyEval_EvalFrameDefault or Py_Version symbol)");

  auto text = python::inspect(kWorkerPy);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().message, "'" + kWorkerPy + "' is not an ELF file");

  auto sleep = python::inspect("/bin/sleep");
  ASSERT_FALSE(sleep.ok());
  EXPECT_EQ(sleep.error().message,
            "/bin/sleep is not a CPython 3.11+ interpreter (no _PyEval_EvalFrameDefault or Py_Version symbol)");

  EXPECT_EQ(python::supported_versions(), "3.11, 3.12, 3.13");
}

// ---------------------------------------------------------------- plan

/// A config beside the fixture (so `source:` is relative to it), for a script no
/// process runs: the plan then depends on the config and the files only.
const std::string kPlanFile = std::string(INSA_SOURCE_DIR) + "/tests/unit/python-probes.yaml";

std::string plan_yaml(const std::string& function, const std::string& extra_metrics) {
  return R"(metrics:
  - {name: insa_py_calls_total, type: counter, labels: [mode, status]}
  - {name: insa_py_size_bytes, type: histogram, buckets: [10, 100]}
  - {name: insa_py_n_total, type: counter}
probes:
  - name: req
    python: {script: insa-unit-not-running.py, function: )" +
         function + R"(, interpreter: /usr/bin/python3.11, source: ../fixtures/python/py_worker.py}
    status:
      - {if: exception == TimeoutError, then: timeout}
      - {else: ok}
    metrics:
)" + extra_metrics;
}

Result<plan::Plan> plan_of(const std::string& yaml, config::Config* keep) {
  auto c = config::parse_config(yaml, kPlanFile);
  if (!c) return c.error();
  *keep = std::move(c).value();
  return plan::build_plan(*keep);
}

TEST(PythonPlan, NamedParametersBecomeSlots) {
  const std::string yaml = plan_yaml(
      "Agent.handle_request", R"(      - {metric: insa_py_calls_total, labels: {mode: $mode:str16, status: $status}}
      - {metric: insa_py_size_bytes, observe: $request:len}
      - {metric: insa_py_size_bytes, observe: $arg2:len, if: ret != None}
      - {metric: insa_py_n_total, count: $self, if: request:len > 5}
)");
  config::Config cfg;
  auto p = plan_of(yaml, &cfg);
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_EQ(p->probes.size(), 1u);
  ASSERT_EQ(p->py_targets.size(), 1u);
  const auto& t = p->py_targets[0];
  EXPECT_EQ(std::string(t.qualname, t.qual_len), "Agent.handle_request");
  EXPECT_EQ(std::string(t.file, t.file_len), "insa-unit-not-running.py");
  EXPECT_EQ(t.tgid, 0u);
  EXPECT_EQ(t.spec, p->probes[0].cookie);
  EXPECT_EQ(t.ret_conv, 0);
  // Slots in first-use order: $mode:str (local 2), $request:len (local 1; $arg2:len is the
  // same), $self (local 0, int).
  EXPECT_EQ(t.slots[0].local, 2);
  EXPECT_EQ(t.slots[0].conv, INSA_PY_STR);
  EXPECT_EQ(t.slots[1].local, 1);
  EXPECT_EQ(t.slots[1].conv, INSA_PY_LEN);
  EXPECT_EQ(t.slots[2].local, 0);
  EXPECT_EQ(t.slots[2].conv, INSA_PY_INT);
  for (size_t i = 3; i < INSA_MAX_ARGS; ++i) EXPECT_EQ(t.slots[i].conv, 0) << i;

  const auto& spec = p->specs[p->probes[0].cookie];
  EXPECT_EQ(spec.flags, INSA_PROBE_TRACKED | INSA_PROBE_PYTHON);
  ASSERT_EQ(spec.nrules, 1);
  EXPECT_EQ(spec.rules[0].src, INSA_SRC_EXC);
  EXPECT_EQ(spec.rules[0].value, static_cast<int64_t>(python::name_hash("TimeoutError")));
  ASSERT_EQ(spec.nactions, 4);
  // The label reads slot 1 as a string; the observations read slot 2 (len).
  ASSERT_EQ(spec.actions[0].nlabels, 2);
  EXPECT_EQ(spec.actions[0].labels[0].src, INSA_SRC_ARG_STR);
  EXPECT_EQ(spec.actions[0].labels[0].arg, 1);
  EXPECT_EQ(spec.actions[0].labels[0].len, 16);
  EXPECT_EQ(spec.actions[1].value_src, INSA_SRC_ARG);
  EXPECT_EQ(spec.actions[1].value_arg, 2);
  EXPECT_EQ(spec.actions[2].value_src, INSA_SRC_ARG);
  EXPECT_EQ(spec.actions[2].value_arg, 2);
  EXPECT_EQ(spec.actions[2].cond.src, INSA_SRC_RET_NONE);
  EXPECT_EQ(spec.actions[3].value_src, INSA_SRC_ARG);
  EXPECT_EQ(spec.actions[3].value_arg, 3);
  EXPECT_EQ(spec.actions[3].cond.src, INSA_SRC_ARG);
  EXPECT_EQ(spec.actions[3].cond.arg, 2);
  EXPECT_EQ(spec.actions[3].cond.value, 5);

  ASSERT_EQ(p->py_interpreters.size(), 1u);
  EXPECT_EQ(p->py_interpreters[0].path, "/usr/bin/python3.11");
  EXPECT_EQ(p->probes[0].target, "python Agent.handle_request in insa-unit-not-running.py");
  EXPECT_NE(p->probes[0].sites.find("; defined in " + std::string(INSA_SOURCE_DIR) +
                                    "/tests/unit/../fixtures/python/py_worker.py:43 (async def)"),
            std::string::npos)
      << p->probes[0].sites;
}

TEST(PythonPlan, ReturnValueConversions) {
  config::Config cfg;
  auto len = plan_of(plan_yaml("parse_record", "      - {metric: insa_py_size_bytes, observe: $ret:len}\n"), &cfg);
  ASSERT_TRUE(len.ok()) << len.error().message;
  EXPECT_EQ(len->py_targets[0].ret_conv, INSA_PY_LEN);
  config::Config cfg2;
  auto i = plan_of(plan_yaml("produce",
                             "      - {metric: insa_py_size_bytes, observe: $n, when: entry}\n"
                             "      - {metric: insa_py_size_bytes, observe: $ret}\n"),
                   &cfg2);
  ASSERT_TRUE(i.ok()) << i.error().message;
  EXPECT_EQ(i->py_targets[0].ret_conv, INSA_PY_INT);
  EXPECT_EQ(i->py_targets[0].slots[0].local, 0);
  EXPECT_EQ(i->py_targets[0].slots[0].conv, INSA_PY_INT);
  config::Config cfg3;
  const std::string both = plan_yaml("parse_record",
                                     "      - {metric: insa_py_size_bytes, observe: $ret:len}\n"
                                     "      - {metric: insa_py_size_bytes, observe: $ret}\n");
  auto b = plan_of(both, &cfg3);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().message,
            kPlanFile + ":" + at(both, "name: req") +
                ": probe 'req' reads the return value as $ret:len and as $ret; one probe reads it one "
                "way (split it into two probes)");
}

TEST(PythonPlan, UnknownParameter) {
  const std::string yaml = plan_yaml("Agent.handle_request", "      - {metric: insa_py_size_bytes, observe: $x:len}\n");
  config::Config cfg;
  auto p = plan_of(yaml, &cfg);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message, kPlanFile + ":" + at(yaml, "Agent.handle_request") +
                                   ": 'Agent.handle_request' has no parameter 'x' (parameters: self, request, mode)");
  const std::string many = plan_yaml("parse_record", "      - {metric: insa_py_size_bytes, observe: $arg2}\n");
  auto q = plan_of(many, &cfg);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().message, kPlanFile + ":" + at(many, "parse_record") +
                                   ": $arg2: 'parse_record' has 1 parameters (self counts as $arg1)");
}

TEST(PythonPlan, UnknownFunctionSuggests) {
  const std::string src = std::string(INSA_SOURCE_DIR) + "/tests/unit/../fixtures/python/py_worker.py";
  const std::string yaml = plan_yaml("handle_request", "      - {metric: insa_py_n_total}\n");
  config::Config cfg;
  auto p = plan_of(yaml, &cfg);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message, kPlanFile + ":" + at(yaml, "handle_request") +
                                   ": function 'handle_request' is not defined in " + src +
                                   "; did you mean 'Agent.handle_request'? (run 'insa-exporter list-probes " + src +
                                   "' to see its functions)");
  const std::string none = plan_yaml("Agent.missing", "      - {metric: insa_py_n_total}\n");
  auto q = plan_of(none, &cfg);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().message, kPlanFile + ":" + at(none, "Agent.missing") +
                                   ": function 'Agent.missing' is not defined in " + src +
                                   " (run 'insa-exporter list-probes " + src + "' to see its functions)");
}

TEST(PythonPlan, MissingSourceAndBadInterpreter) {
  std::string yaml = plan_yaml("f", "      - {metric: insa_py_n_total}\n");
  yaml.replace(yaml.find("../fixtures/python/py_worker.py"), 31, "nowhere.py");
  config::Config cfg;
  auto p = plan_of(yaml, &cfg);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message, kPlanFile + ":" + at(yaml, "{script") +
                                   ": source 'nowhere.py' not found (relative to the config file's directory)");
  std::string old = plan_yaml("parse_record", "      - {metric: insa_py_n_total}\n");
  old.replace(old.find("/usr/bin/python3.11"), 19, "/bin/sleep");
  auto q = plan_of(old, &cfg);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().message, kPlanFile + ":" + at(old, "{script") +
                                   ": /bin/sleep is not a CPython 3.11+ interpreter (no _PyEval_EvalFrameDefault or "
                                   "Py_Version symbol)");
}

}  // namespace
}  // namespace insa
