// SPDX-License-Identifier: Apache-2.0
// `insa-exporter list-probes` on Python: a running process (by PID, on
// Debian's 3.11 and pyenv's 3.12.1 / 3.13.0 with their shared libpython), a
// script file named by its #! line, and the one-line errors for a PID that is
// not a Python process. The output is compared line by line with the fixture
// tests/fixtures/python/py_worker.py and the interpreter's own version.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "harness.h"

namespace insa::testing {
namespace {

const std::string kTakes =
    "list-probes takes an ELF binary, a Python script, or the PID of a Python process (1234 or pid:1234)";

std::string worker() { return source_dir() + "/tests/fixtures/python/py_worker.py"; }
std::string exporter() { return binary_dir() + "/insa-exporter"; }

std::string pyenv_python(const std::string& version) {
  const char* root = std::getenv("PYENV_ROOT");
  std::string base = root ? root : std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") + "/.pyenv";
  return base + "/versions/" + version + "/bin/python" + version.substr(0, version.rfind('.'));
}

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

/// "3.11.2", from the interpreter itself.
std::string version_of(const std::string& python) {
  auto [st, out] = run_capture({python, "-c", "import sys; print(sys.version.split()[0])"});
  EXPECT_EQ(st, 0) << out;
  return out.substr(0, out.find('\n'));
}

/// The line of the fixture that defines `def_text` ("def fib(n)"): found in the file, so
/// the expectations follow edits of the fixture.
int line_in_worker(const std::string& def_text) {
  std::ifstream in(source_dir() + "/tests/fixtures/python/py_worker.py");
  int n = 0;
  for (std::string l; std::getline(in, l);) {
    ++n;
    if (l.find(def_text) != std::string::npos) return n;
  }
  ADD_FAILURE() << "no '" << def_text << "' in the fixture";
  return 0;
}

/// The fixture's functions as list-probes prints them (kind, qualname, parameters, line).
const std::vector<std::string>& worker_functions() {
  static const std::vector<std::string> lines = [] {
    struct F {
      const char* shown;  // what list-probes prints before "  line N"
      const char* def;    // how the source spells the definition
    };
    const F fs[] = {
        {"def note(series, value)", "def note(series, value=1)"},
        {"def observe(series, value)", "def observe(series, value)"},
        {"def Agent.__init__(self, kind)", "def __init__(self, kind)"},
        {"async def Agent.handle_request(self, request, mode)", "async def handle_request(self, request, mode)"},
        {"async def Agent.lookup(self, key)", "async def lookup(self, key)"},
        {"def checksum(data)", "def checksum(data)"},
        {"def fib(n)", "def fib(n)"},
        {"def parse_record(record)", "def parse_record(record)"},
        {"generator produce(n)", "def produce(n)"},
        {"def never_called()", "def never_called()"},
        {"async def run_requests(rng, agent, count)", "async def run_requests(rng, agent, count)"},
        {"def work(seed, requests, records)", "def work(seed, requests, records)"},
        {"def work_round(seed, requests, records)", "def work_round(seed, requests, records)"},
        {"async def hold(n)", "async def hold(n)"},
        {"async def hang(n)", "async def hang(n)"},
        {"def main()", "def main()"},
    };
    std::vector<std::string> out;
    for (const auto& f : fs) out.push_back(std::string(f.shown) + "  line " + std::to_string(line_in_worker(f.def)));
    return out;
  }();
  return lines;
}

/// One of worker_functions(), by what it starts with.
std::string worker_function(const std::string& shown) {
  for (const auto& l : worker_functions())
    if (l.rfind(shown + "  line ", 0) == 0) return l;
  ADD_FAILURE() << "no " << shown;
  return "";
}


/// Waits for the worker to print `what`.
bool wait_for(const std::string& log, const std::string& what) {
  for (int i = 0; i < 200; ++i) {
    if (slurp(log).find(what) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

struct Interp {
  const char* name;
  std::string python;
  std::string file;  ///< where the interpreter is: the executable or its libpython
};

std::vector<Interp> interpreters() {
  auto lib = [](const std::string& launcher, const std::string& minor) {
    return launcher.substr(0, launcher.rfind("/bin/")) + "/lib/libpython" + minor + ".so.1.0";
  };
  return {{"Debian311", "/usr/bin/python3.11", "/usr/bin/python3.11"},
          {"Pyenv312", pyenv_python("3.12.1"), lib(pyenv_python("3.12.1"), "3.12")},
          {"Pyenv313", pyenv_python("3.13.0"), lib(pyenv_python("3.13.0"), "3.13")}};
}

class PythonListProbes : public ::testing::TestWithParam<Interp> {};

// A worker waiting for a go file that never comes: its functions, from its PID.
TEST_P(PythonListProbes, RunningProcessByPid) {
  require_root();
  const auto& in = GetParam();
  struct stat st {};
  ASSERT_EQ(stat(in.python.c_str(), &st), 0)
      << in.python << " is missing: the image's interpreters are part of this test";
  const std::string go = "/tmp/insa-list-never-" + std::string(in.name);
  std::remove(go.c_str());
  const std::string log = "/tmp/insa-list-worker-" + std::string(in.name) + ".log";
  std::remove(log.c_str());
  Child w = Child::spawn({in.python, worker(), "--go", go}, log);
  ASSERT_TRUE(wait_for(log, "waiting for " + go)) << slurp(log);
  const std::string pid = std::to_string(w.pid());

  std::vector<std::string> want = {
      "# pid " + pid + ": Python functions of " + worker(),
      "# interpreter: " + in.file + " (CPython " + version_of(in.python) + ")",
      "# probe one in probes.yaml with  python: {script: py_worker.py, function: QUALNAME} (and pid: " + pid +
          " for this process only); its parameters are values $NAME, $NAME:len, $NAME:str",
  };
  want.insert(want.end(), worker_functions().begin(), worker_functions().end());

  auto [rc, out] = run_capture({exporter(), "list-probes", pid});
  EXPECT_EQ(rc, 0) << out;
  auto got = lines_of(out);
  EXPECT_EQ(got, want);
  // The four the probes of tests/root/configs/python.yaml name, spelled out.
  for (const std::string line :
       {worker_function("async def Agent.handle_request(self, request, mode)"),
        worker_function("def parse_record(record)"), worker_function("generator produce(n)"),
        worker_function("def never_called()")})
    EXPECT_EQ(std::count(got.begin(), got.end(), line), 1) << line << "\n" << out;

  auto [rc2, out2] = run_capture({exporter(), "list-probes", "pid:" + pid});
  EXPECT_EQ(rc2, 0) << out2;
  EXPECT_EQ(out2, out);
  EXPECT_TRUE(w.running()) << "list-probes must not disturb the worker";
}

INSTANTIATE_TEST_SUITE_P(Interpreters, PythonListProbes, ::testing::ValuesIn(interpreters()),
                         [](const auto& info) { return std::string(info.param.name); });

// A script without .py, recognized by its #! line, which names the interpreter.
TEST(PythonListProbesScript, ScriptNamedByItsShebang) {
  require_root();
  const std::string script = "/tmp/insa-list-worker-script";
  std::string text = slurp(worker());
  ASSERT_EQ(text.rfind("#!/usr/bin/env python3\n", 0), 0u) << "the fixture's #! line changed";
  text.replace(0, text.find('\n'), "#!/usr/bin/python3.11");
  std::ofstream(script) << text;
  auto [rc, out] = run_capture({exporter(), "list-probes", script});
  EXPECT_EQ(rc, 0) << out;
  std::vector<std::string> want = {
      "# " + script + ": Python functions",
      "# interpreter (#!/usr/bin/python3.11): /usr/bin/python3.11 (CPython " + version_of("/usr/bin/python3.11") + ")",
      "# probe one in probes.yaml with  python: {script: insa-list-worker-script, function: QUALNAME}; its parameters "
      "are values $NAME, $NAME:len, $NAME:str",
  };
  want.insert(want.end(), worker_functions().begin(), worker_functions().end());
  EXPECT_EQ(lines_of(out), want);
  std::remove(script.c_str());

  auto [rc2, out2] = run_capture({exporter(), "list-probes", "/tmp/insa-no-such-worker.py"});
  EXPECT_EQ(WEXITSTATUS(rc2), 1) << out2;
  EXPECT_EQ(out2,
            "insa-exporter: cannot read Python source '/tmp/insa-no-such-worker.py': No such file or directory\n");
}

// `python3 -m pkg.mod`: the module's file under the process's working directory.
TEST(PythonListProbesModule, ModuleProcessByPid) {
  require_root();
  const std::string dir = "/tmp/insa-list-module";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/jobs");
  std::ofstream(dir + "/jobs/__init__.py") << "";
  std::ofstream(dir + "/jobs/runner.py") << "import time\n\n\nclass Runner:\n    def run(self, job, *, retries=2):\n"
                                            "        yield job\n\n\nprint('up', flush=True)\ntime.sleep(30)\n";
  const std::string log = dir + ".log";
  std::remove(log.c_str());
  // exec keeps the PID: the shell only sets the working directory.
  Child m = Child::spawn({"/bin/sh", "-c", "cd " + dir + " && exec /usr/bin/python3.11 -m jobs.runner"}, log);
  ASSERT_TRUE(wait_for(log, "up")) << slurp(log);
  const std::string pid = std::to_string(m.pid());
  auto [rc, out] = run_capture({exporter(), "list-probes", pid});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(lines_of(out),
            (std::vector<std::string>{
                "# pid " + pid + ": Python functions of " + dir + "/jobs/runner.py",
                "# interpreter: /usr/bin/python3.11 (CPython " + version_of("/usr/bin/python3.11") + ")",
                "# probe one in probes.yaml with  python: {module: jobs.runner, function: QUALNAME} (and pid: " + pid +
                    " for this process only); its parameters are values $NAME, $NAME:len, $NAME:str",
                "generator Runner.run(self, job, retries)  line 5",
            }));
  m = Child();

  // A package run with -m: its __main__.py, named with file: since the default is jobs.py.
  std::ofstream(dir + "/jobs/__main__.py") << "import time\n\n\nasync def serve(port):\n    pass\n\n\n"
                                              "print('up', flush=True)\ntime.sleep(30)\n";
  const std::string log2 = dir + "-main.log";
  std::remove(log2.c_str());
  Child pkg = Child::spawn({"/bin/sh", "-c", "cd " + dir + " && exec /usr/bin/python3.11 -m jobs"}, log2);
  ASSERT_TRUE(wait_for(log2, "up")) << slurp(log2);
  const std::string pid2 = std::to_string(pkg.pid());
  auto [rc2, out2] = run_capture({exporter(), "list-probes", "pid:" + pid2});
  EXPECT_EQ(rc2, 0) << out2;
  EXPECT_EQ(lines_of(out2),
            (std::vector<std::string>{
                "# pid " + pid2 + ": Python functions of " + dir + "/jobs/__main__.py",
                "# interpreter: /usr/bin/python3.11 (CPython " + version_of("/usr/bin/python3.11") + ")",
                "# probe one in probes.yaml with  python: {module: jobs, file: jobs/__main__.py, function: QUALNAME} "
                "(and pid: " +
                    pid2 + " for this process only); its parameters are values $NAME, $NAME:len, $NAME:str",
                "async def serve(port)  line 4",
            }));
  pkg = Child();
  std::filesystem::remove_all(dir);
}

// One line naming the PID and what list-probes takes.
TEST(PythonListProbesErrors, NotAPythonProcess) {
  require_root();
  // PIDs are below pid_max: pid_max itself is never a process.
  std::string pid_max = slurp("/proc/sys/kernel/pid_max");
  pid_max = pid_max.substr(0, pid_max.find('\n'));
  auto [rc, out] = run_capture({exporter(), "list-probes", pid_max});
  EXPECT_EQ(WEXITSTATUS(rc), 1) << out;
  EXPECT_EQ(out, "insa-exporter: pid " + pid_max + ": no such process; " + kTakes + "\n");

  Child sleeper = Child::spawn({"/bin/sleep", "30"});
  const std::string pid = std::to_string(sleeper.pid());
  // Until exec, the child is a copy of this test program: wait for its new command line.
  for (int i = 0; i < 100 && slurp("/proc/" + pid + "/cmdline").rfind("/bin/sleep", 0) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto [rc2, out2] = run_capture({exporter(), "list-probes", "pid:" + pid});
  EXPECT_EQ(WEXITSTATUS(rc2), 1) << out2;
  EXPECT_EQ(out2, "insa-exporter: pid " + pid + " is not a Python process ('/bin/sleep 30'); " + kTakes + "\n");

  // Python without a script: nothing a python: probe can match.
  const std::string log = "/tmp/insa-list-dash-c.log";
  std::remove(log.c_str());
  Child c = Child::spawn({"/usr/bin/python3.11", "-c", "import time; print('up', flush=True); time.sleep(30)"}, log);
  ASSERT_TRUE(wait_for(log, "up")) << slurp(log);
  const std::string cpid = std::to_string(c.pid());
  auto [rc3, out3] = run_capture({exporter(), "list-probes", cpid});
  EXPECT_EQ(WEXITSTATUS(rc3), 1) << out3;
  EXPECT_EQ(out3, "insa-exporter: pid " + cpid +
                      " runs Python without a script file (-c, stdin or interactive); python: probes match a script or "
                      "a module\n");
}

}  // namespace
}  // namespace insa::testing
