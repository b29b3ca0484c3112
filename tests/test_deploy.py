"""`make deploy` and friends against a real sshd on 127.0.0.1.

The fixture starts its own sshd (key-only, temporary host keys and config,
a temporary user created with useradd). There is no systemd in CI, so on that
user's PATH `systemctl`, `journalctl` and `sudo` are recording stand-ins:
`systemctl is-active imps` answers by running the current release's
`bin/imps --version`, so a release whose code does not start is "failed".

Test seams used (documented in deploy/deploy.sh): IMPS_PREFIX / IMPS_STATE /
IMPS_UNIT_DIR point at a temporary layout, IMPS_SSH_OPTS carries the port and
key, and IMPS_ENV_INSTALL makes the environment with `python3 -m venv
--without-pip` (and records each install) instead of the real pip install.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from support import free_port, stop_process

REPO = Path(__file__).resolve().parents[1]
SSHD = "/usr/sbin/sshd"

STUB_CLI = textwrap.dedent('''\
    """Stand-in for the box's CLI in deploy tests: only --version."""
    import sys


    def main(argv=None):
        argv = sys.argv[1:] if argv is None else argv
        if argv == ["--version"]:
            print("imps (deploy test stand-in)")
            return 0
        return 2
    ''')
BROKEN_CLI = "import imps.no_such_module  # a release that cannot start\n"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class LoopbackSshd:
    """A temporary user and an sshd on 127.0.0.1 that lets only that user in, by key."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.user = f"impsdep{os.getpid() % 100000}"
        self.port = free_port(socket.SOCK_STREAM)
        self.proc = None
        self.home = Path(tempfile.mkdtemp(prefix="imps-deploy-home-", dir="/tmp"))
        run(["useradd", "--no-create-home", "--home-dir", str(self.home), "--shell", "/bin/bash",
             self.user])
        run(["usermod", "-p", "*", self.user])      # no password, but not locked: keys work
        pw = pwd.getpwnam(self.user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        key = self.dir / "client_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "imps-deploy-test", "-f", str(key)])
        hostkey = self.dir / "host_ed25519"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)])
        known = self.dir / "known_hosts"
        known.write_text(f"[127.0.0.1]:{self.port} {Path(str(hostkey) + '.pub').read_text()}")
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(Path(str(key) + ".pub").read_text())
        self.stubs = self.home / "stubs"
        self.stubs.mkdir()
        (ssh_dir / "environment").write_text(f"PATH={self.stubs}:/usr/local/bin:/usr/bin:/bin\n")
        # The user may "sudo" (a stand-in that runs the command as the same user).
        (self.stubs / "sudo").write_text('#!/bin/bash\n[ "$1" = -n ] && shift\nexec "$@"\n')
        (self.stubs / "sudo").chmod(0o755)
        self.chown(self.home)
        config = self.dir / "sshd_config"
        config.write_text(textwrap.dedent(f"""\
            Port {self.port}
            ListenAddress 127.0.0.1
            HostKey {hostkey}
            PidFile {self.dir / 'sshd.pid'}
            AuthorizedKeysFile .ssh/authorized_keys
            AllowUsers {self.user}
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PermitUserEnvironment yes
            PrintMotd no
            Subsystem sftp internal-sftp
            """))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # privilege separation directory
        self.log = open(self.dir / "sshd.log", "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.ssh_opts = (f"-p {self.port} -i {key} -o IdentitiesOnly=yes "
                         f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o LogLevel=ERROR")
        self.host = f"{self.user}@127.0.0.1"
        self._wait_until_up()

    def chown(self, path: Path):
        for p in [path, *path.rglob("*")]:
            os.lchown(p, self.uid, self.gid)

    def _wait_until_up(self):
        deadline = time.monotonic() + 15
        while True:
            r = subprocess.run(["ssh", *self.ssh_opts.split(), "-o", "BatchMode=yes", self.host, "true"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"test sshd did not come up: {r.stderr.strip()}; sshd log: "
                                   f"{(self.dir / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def close(self):
        if self.proc:
            stop_process(self.proc)
        self.log.close()
        if subprocess.run(["userdel", self.user], capture_output=True).returncode != 0:
            subprocess.run(["userdel", "-f", self.user], capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD):
        raise RuntimeError(f"{SSHD} is missing: install openssh-server (make system-deps)")
    server = None
    try:
        server = LoopbackSshd(tmp_path_factory.mktemp("sshd"))
        yield server
    finally:
        if server is not None:
            server.close()
        else:   # construction failed half way: still remove the user
            subprocess.run(["userdel", "-f", f"impsdep{os.getpid() % 100000}"], capture_output=True)


class Box:
    """One box's layout in the test user's home, its stand-ins, and a source tree to deploy."""

    def __init__(self, sshd: LoopbackSshd, name: str, source_root: Path):
        self.sshd = sshd
        self.root = sshd.home / name
        self.prefix = self.root / "opt-imps"
        self.state = self.root / "var-lib-imps"
        self.units = self.root / "systemd"
        self.calls = self.root / "systemctl.calls"
        self.sudo_calls = self.root / "sudo.calls"
        self.installs = self.root / "env-installs"
        for d in (self.prefix, self.state / "logs", self.state / "models", self.units):
            d.mkdir(parents=True)
        self.calls.touch()
        self.installs.touch()
        self._stubs()
        sshd.chown(self.root)
        sshd.chown(sshd.stubs)
        # The tree to deploy: the real device/, deploy/ and docs/, with a stand-in CLI.
        self.source = source_root / name
        for part in ("device", "deploy", "docs"):
            if (REPO / part).exists():
                shutil.copytree(REPO / part, self.source / part,
                                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
        self.set_cli(STUB_CLI)
        git = ["git", "-C", str(self.source), "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
        run([*git, "init", "-q"])
        run([*git, "add", "-A"])
        run([*git, "commit", "-q", "-m", "test tree"])
        self.rev = run([*git, "rev-parse", "--short", "HEAD"]).stdout.strip()

    def _stubs(self):
        stubs = self.sshd.stubs
        (stubs / "systemctl").write_text(textwrap.dedent(f"""\
            #!/bin/bash
            # Recording stand-in for systemctl: there is no systemd in CI.
            echo "$*" >> {self.calls}
            case "$1" in
              is-active)
                if {self.prefix}/current/bin/imps --version >/dev/null 2>&1; then echo active
                else echo failed; exit 3; fi ;;
              restart)   # like systemd: waits for the start, fails when the service does not come up
                if ! {self.prefix}/current/bin/imps --version >/dev/null 2>&1; then
                  echo "Job for imps.service failed because the control process exited with error code." >&2
                  exit 1
                fi ;;
              show) echo "mode=user performer 0.0/s model 0.0/s" ;;
              status) echo "* imps.service - IMPS box (stand-in)"; echo "     Active: active (running)" ;;
            esac
            exit 0
            """))
        (stubs / "journalctl").write_text("#!/bin/bash\necho \"-- journal stand-in: $* --\"\n")
        (stubs / "sudo").write_text(textwrap.dedent(f"""\
            #!/bin/bash
            # Stand-in for sudo: records, then runs the command as the same user.
            echo "$*" >> {self.sudo_calls}
            [ "$1" = -n ] && shift
            exec "$@"
            """))
        for stub in stubs.iterdir():
            stub.chmod(0o755)

    def set_cli(self, text: str):
        (self.source / "device" / "imps" / "cli.py").write_text(text)

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update(
            IMPS_PREFIX=str(self.prefix), IMPS_STATE=str(self.state), IMPS_UNIT_DIR=str(self.units),
            IMPS_USER="imps", IMPS_SSH_OPTS=self.sshd.ssh_opts,
            IMPS_ENV_INSTALL=f'python3 -m venv --without-pip "$ENV_DIR" && echo "$ENV_DIR" >> {self.installs}',
            IMPS_READY_TIMEOUT="4", IMPS_SETTLE="1")
        env.update(extra)
        return env

    def deploy(self, *args, host=None, **extra):
        return subprocess.run(["bash", str(self.source / "deploy" / "deploy.sh"), "deploy",
                               host or self.sshd.host, *args],
                              capture_output=True, text=True, env=self.env(**extra), timeout=120)

    def current(self) -> Path:
        return Path(os.readlink(self.prefix / "current"))

    def releases(self) -> list[Path]:
        return sorted((self.prefix / "releases").iterdir())

    def systemctl_calls(self) -> list[str]:
        return self.calls.read_text().splitlines()

    def install_count(self) -> int:
        return len(self.installs.read_text().splitlines())


@pytest.fixture
def box(sshd, request, tmp_path):
    return Box(sshd, request.node.name.replace("[", "-").strip("]"), tmp_path)


def ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def test_first_deploy(box, tmp_path):
    model = tmp_path / "knobs-9d.tflite"
    model.write_bytes(b"TFL3 not really a model")
    (tmp_path / "knobs-9d.json").write_text('{"dimension": 9}\n')
    r = ok(box.deploy(str(model)))

    [release] = box.releases()
    assert box.current() == release
    assert release.name.endswith("-" + box.rev)
    assert (release / "device" / "imps" / "__init__.py").exists()
    assert (release / "deploy" / "sound" / "imps.pd").exists()
    env = Path(os.readlink(release / "venv"))
    assert env.parent == box.prefix / "envs" and (env / ".complete").exists()
    assert box.install_count() == 1
    # The launcher runs this release's code on its environment.
    out = run([str(box.prefix / "current" / "bin" / "imps"), "--version"]).stdout
    assert "deploy test stand-in" in out
    assert list((release / "device" / "imps" / "io" / "__pycache__").glob("notify.*.pyc")), "not byte-compiled"
    # Model and sidecar went to the models directory.
    assert (box.state / "models" / "knobs-9d.tflite").read_bytes() == model.read_bytes()
    assert (box.state / "models" / "knobs-9d.json").exists()
    assert os.readlink(box.state / "models" / "current.tflite") == "knobs-9d.tflite"
    assert os.readlink(box.state / "models" / "current.json") == "knobs-9d.json"
    # Units rendered with this box's paths and installed; services restarted.
    unit = (box.units / "imps.service").read_text()
    assert f"ExecStart={box.prefix}/current/bin/imps run --config /etc/imps/box.toml" in unit
    assert f"ReadWritePaths={box.state}/logs {box.state}/models" in unit
    for name in ("imps.service", "imps-sound.service", "imps-web.service"):
        assert not re.findall(r"@[A-Z]+@", (box.units / name).read_text()), f"{name}: placeholder left"
    calls = box.systemctl_calls()
    units = "imps-sound.service imps.service imps-web.service"
    assert calls[:4] == ["daemon-reload", f"enable --quiet {units}", f"reset-failed {units}", f"restart {units}"]
    assert "is-active imps.service" in calls
    # Not root on the box: privileged steps went through sudo -n.
    assert "-n systemctl daemon-reload" in box.sudo_calls.read_text().splitlines()
    assert "environment" in r.stdout and "installing" in r.stdout
    assert f"deployed {release.name}" in r.stdout
    assert "mode=user" in r.stdout            # the service's STATUS line is reported


def test_an_impsy_model_is_converted_first_and_says_so(box, impsy_models, tmp_path):
    """MODEL=<IMPSY's .tflite> goes to the box in the box's own format, with its sidecar; with
    IMPS_CONVERT=0 it goes as it is, and the converted twin's sidecar does not stay beside it."""
    import json
    import sys
    model = tmp_path / impsy_models[4].name
    shutil.copy(impsy_models[4], model)
    r = ok(box.deploy(str(model), IMPS_WORK_PYTHON=sys.executable))
    assert f"model {model} has no sidecar: converting it to the box's own format" in r.stderr
    assert "matches reference over 200 steps" in r.stderr and "converted: " in r.stderr
    models = box.state / "models"
    sent = models / model.name
    assert sent.read_bytes() != model.read_bytes()
    sidecar = json.loads((models / f"{model.stem}.json").read_text())
    assert sidecar["converted_from"]["file"] == model.name
    assert os.readlink(models / "current.json") == f"{model.stem}.json"
    r = ok(box.deploy(str(model), IMPS_WORK_PYTHON=sys.executable, IMPS_CONVERT="0"))
    assert "converting" not in r.stderr
    assert sent.read_bytes() == model.read_bytes()
    assert not (models / f"{model.stem}.json").exists() and not (models / "current.json").exists()


def test_an_impsy_model_it_cannot_convert_goes_as_it_is(box, impsy, tmp_path):
    import sys
    model = Path(impsy("models", tmp_path, 4, "--optimise")["models"][0])
    r = ok(box.deploy(str(model), IMPS_WORK_PYTHON=sys.executable))
    assert "cannot convert it: its weights are quantised" in r.stderr
    assert "it goes as it is, unconverted" in r.stderr
    assert (box.state / "models" / model.name).read_bytes() == model.read_bytes()
    r = box.deploy(str(model), IMPS_WORK_PYTHON=str(tmp_path / "no-python"))
    assert r.returncode == 0 and "no workstation environment" in r.stderr


def test_an_impsy_keras_it_cannot_convert_stops_the_deploy(box, tmp_path):
    import sys
    model = tmp_path / "broken.keras"
    model.write_text("{}")
    r = box.deploy(str(model), IMPS_WORK_PYTHON=sys.executable)
    assert r.returncode != 0 and "cannot convert it: Keras cannot load it" in r.stderr
    assert not (box.prefix / "releases").exists() or not list((box.prefix / "releases").iterdir())


def test_second_deploy_reuses_the_environment(box):
    ok(box.deploy())
    first = box.current()
    (box.source / "docs" / "change.txt").write_text("a code change, same requirements\n")
    r = ok(box.deploy())
    second = box.current()
    assert second != first and box.releases() == sorted([first, second])
    assert "reused" in r.stdout
    assert box.install_count() == 1, "the environment was reinstalled although requirements did not change"
    assert os.readlink(first / "venv") == os.readlink(second / "venv")
    # Unchanged files are hard links into the previous release (rsync --link-dest).
    assert (first / "deploy" / "deploy.sh").stat().st_ino == (second / "deploy" / "deploy.sh").stat().st_ino

    with open(box.source / "device" / "requirements.txt", "a") as f:
        f.write("# a changed requirement\n")
    r = ok(box.deploy())
    assert box.install_count() == 2 and "installing" in r.stdout
    assert os.readlink(box.current() / "venv") != os.readlink(second / "venv")


def test_broken_release_is_rolled_back(box):
    ok(box.deploy())
    good = box.current()
    restarts_before = box.systemctl_calls().count("restart imps-sound.service imps.service imps-web.service")
    box.set_cli(BROKEN_CLI)
    r = box.deploy()
    assert r.returncode != 0
    [broken] = [p for p in box.releases() if p != good]
    assert box.current() == good, "current should point to the previous release again"
    assert f"release {broken.name} did not come up" in r.stderr
    assert f"ROLLED BACK to {good.name}, which is running again" in r.stderr
    assert "journal stand-in" in r.stderr          # the failing release's log lines are shown
    assert "systemctl restart reported a failed start" in r.stderr
    restarts = box.systemctl_calls().count("restart imps-sound.service imps.service imps-web.service") - restarts_before
    assert restarts == 2, "expected one restart into the broken release and one back"
    calls = box.systemctl_calls()
    last_restart = len(calls) - 1 - calls[::-1].index("restart imps-sound.service imps.service imps-web.service")
    assert calls[last_restart - 1] == "reset-failed imps-sound.service imps.service imps-web.service", \
        "the rollback must clear a start-limit hit before restarting"
    assert broken.exists(), "the broken release is kept for inspection"


def test_rollback_restores_the_previous_units_and_model(box, tmp_path):
    """The previous release runs again under the units it was installed with, and on its model:
    a broken release that brings a changed unit and a new model leaves neither behind."""
    old_model = tmp_path / "old-9d.tflite"
    old_model.write_bytes(b"TFL3 the model the good release plays")
    (tmp_path / "old-9d.json").write_text('{"dimension": 9}\n')
    ok(box.deploy(str(old_model)))
    good = box.current()
    good_units = {name: (box.units / name).read_text() for name in ("imps.service", "imps-sound.service")}
    template = box.source / "deploy" / "systemd" / "imps.service"
    template.write_text(template.read_text().replace("TimeoutStartSec=60", "TimeoutStartSec=61"))
    new_model = tmp_path / "new-9d.tflite"
    new_model.write_bytes(b"TFL3 the broken release's model")
    box.set_cli(BROKEN_CLI)
    calls_before = len(box.systemctl_calls())
    r = box.deploy(str(new_model))
    assert r.returncode != 0 and f"ROLLED BACK to {good.name}, which is running again" in r.stderr, r.stderr
    assert box.current() == good
    for name, text in good_units.items():
        assert (box.units / name).read_text() == text, f"{name} is still the broken release's"
    assert "TimeoutStartSec=60" in (box.units / "imps.service").read_text()
    assert os.readlink(box.state / "models" / "current.tflite") == "old-9d.tflite"
    assert os.readlink(box.state / "models" / "current.json") == "old-9d.json"
    calls = box.systemctl_calls()[calls_before:]
    last_restart = len(calls) - 1 - calls[::-1].index("restart imps-sound.service imps.service imps-web.service")
    assert "daemon-reload" in calls[calls.index("restart imps-sound.service imps.service imps-web.service") + 1:last_restart], \
        "systemd must re-read the restored units before the rollback's restart"
    assert "units and model restored" in r.stdout


def test_first_release_broken_has_nothing_to_roll_back_to(box):
    box.set_cli(BROKEN_CLI)
    r = box.deploy()
    assert r.returncode != 0
    assert "no previous release to roll back to" in r.stderr


def test_unreachable_host_is_rejected_quickly(box):
    closed = free_port(socket.SOCK_STREAM)
    start = time.monotonic()
    r = box.deploy(host=f"{box.sshd.user}@127.0.0.1", IMPS_SSH_OPTS=f"-p {closed}")
    assert r.returncode != 0
    assert f"cannot reach {box.sshd.user}@127.0.0.1 over ssh" in r.stderr
    assert "Connection refused" in r.stderr
    r = box.deploy(host="pi@imps-box.invalid")
    assert r.returncode != 0 and "cannot reach pi@imps-box.invalid over ssh" in r.stderr
    assert time.monotonic() - start < 15
    assert not (box.prefix / "releases").exists(), "nothing may be written to an unreachable box"


def test_missing_host_is_rejected_by_make():
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "MAKEFLAGS", "MFLAGS")}
    for target in ("deploy", "fetch-logs", "status"):
        r = subprocess.run(["make", "-s", "-C", str(REPO), target], capture_output=True, text=True,
                           env=env, timeout=30)
        assert r.returncode != 0
        assert f"no HOST given: make {target} HOST=user@host" in r.stderr


def test_fetch_logs_and_status(box, tmp_path):
    ok(box.deploy())
    log = box.state / "logs" / "2026-11-26T13-45-00-9d-mdrnn.log"
    log.write_text("2026-11-26T13:45:00.123456,interface,0.5,0.25,0.75,0,0,0,0,0\n")
    box.sshd.chown(box.state)
    dest = tmp_path / "fetched"
    r = ok(subprocess.run(["bash", str(box.source / "deploy" / "deploy.sh"), "fetch-logs",
                           box.sshd.host, str(dest)], capture_output=True, text=True, env=box.env()))
    assert (dest / log.name).read_text() == log.read_text()
    assert "1 log files" in r.stdout

    r = ok(subprocess.run(["bash", str(box.source / "deploy" / "deploy.sh"), "status", box.sshd.host],
                          capture_output=True, text=True, env=box.env()))
    assert "imps.service - IMPS box (stand-in)" in r.stdout
    assert "journal stand-in: -u imps.service -n 30" in r.stdout
    assert f"release: {box.current()}" in r.stdout


# --- provisioning ------------------------------------------------------------------

PROVISION = REPO / "deploy" / "provision.sh"


def provision_env(root: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    env.update(IMPS_PREFIX=str(root / "opt-imps"), IMPS_STATE=str(root / "var-lib-imps"),
               IMPS_ETC=str(root / "etc"), **extra)
    return env


def test_provision_dry_run_prints_the_plan_and_changes_nothing(tmp_path):
    root = tmp_path / "box"
    r = ok(subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True,
                          env=provision_env(root, IMPS_USER="impsnobody")))
    out = r.stdout
    assert "dry run: nothing is changed" in out
    assert "+ useradd --system --user-group" in out and " impsnobody\n" in out
    assert f"+ install -d -m 2770 -o impsnobody -g impsnobody {root}/var-lib-imps/logs" in out
    assert f"+ write {root}/etc/imps/box.toml" in out
    assert f'    | directory = "{root}/var-lib-imps/logs"' in out
    assert not root.exists(), "a dry run must not change anything"


def dry_run_file(output: str, path: Path) -> str:
    """The content of a file a provision dry run would write (it prints it, prefixed)."""
    lines = output.splitlines()
    start = lines.index(f"+ write {path} (mode 0644)") + 1
    body = []
    for line in lines[start:]:
        if not line.startswith("    | "):
            break
        body.append(line[6:])
    return "\n".join(body) + "\n"


def polkit_decides(rule: str, action: str, user: str):
    """Run a polkit rules file in duktape (the engine polkit 121+ uses) as polkitd would:
    each rule is called with the action and subject; the first answer wins."""
    import dukpy
    return dukpy.evaljs([
        "var rules = [];"
        "var polkit = {Result: {YES: 'yes', NO: 'no', AUTH_ADMIN: 'auth_admin', NOT_HANDLED: null},"
        "              addRule: function (f) { rules.push(f); }, log: function () {}};",
        rule,
        "var answer = null;"
        "for (var i = 0; i < rules.length && answer === null; i++) {"
        "  var r = rules[i]({id: dukpy.action}, {user: dukpy.user, local: false, active: false});"
        "  if (r !== undefined && r !== null) answer = r; }"
        "answer"], action=action, user=user)


def test_provisioned_polkit_rule_lets_only_the_service_user_power_off(tmp_path):
    root = tmp_path / "box"
    r = ok(subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True,
                          env=provision_env(root, IMPS_USER="impsbox")))
    rule = dry_run_file(r.stdout, root / "etc" / "polkit-1" / "rules.d" / "50-imps-poweroff.rules")
    assert re.search(r"^PACKAGES=\(.*\bpolkitd\b", PROVISION.read_text(), re.M), "provision must install polkitd"
    for action in ("org.freedesktop.login1.power-off", "org.freedesktop.login1.power-off-multiple-sessions"):
        assert polkit_decides(rule, action, "impsbox") == "yes"
        assert polkit_decides(rule, action, "pi") is None
    for action in ("org.freedesktop.login1.reboot", "org.freedesktop.login1.power-off-ignore-inhibit",
                   "org.freedesktop.login1.suspend", "org.freedesktop.systemd1.manage-units"):
        assert polkit_decides(rule, action, "impsbox") is None, action


def test_provisioned_socket_buffer_cap_fits_the_box_config(tmp_path):
    """The joint: the kernel cap provisioning sets is at least what the shipped box.toml asks
    for per OSC listener, or the box silently gets a smaller buffer than configured."""
    root = tmp_path / "box"
    r = ok(subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True,
                          env=provision_env(root, IMPS_USER="impsbox")))
    conf = dry_run_file(r.stdout, root / "etc" / "sysctl.d" / "60-imps.conf")
    cap = int(re.search(r"^net\.core\.rmem_max = (\d+)$", conf, re.M).group(1))
    example = (REPO / "device" / "imps" / "box.example.toml").read_text()
    asked = int(re.search(r"^receive_buffer = (\d+)", example, re.M).group(1))
    assert cap >= asked
    assert f"buffers: net.core.rmem_max = {cap}" in r.stdout


def test_provision_without_host_is_rejected():
    r = subprocess.run(["make", "-s", "-C", str(REPO), "provision"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "no HOST given: make provision HOST=user@host" in r.stderr


@pytest.fixture
def provision_stubs(tmp_path):
    """Stand-ins for the parts of a Pi this machine lacks: apt-get/dpkg-query (a fake
    package database) and raspi-config (serial settings in a state file)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    state = tmp_path / "stub-state"
    state.mkdir()
    (state / "serial").write_text("cons=0 hw=1\n")          # console on, UART off: a fresh Pi
    scripts = {
        "apt-get": f"""#!/bin/bash
            echo "apt-get $*" >> {state}/calls
            [ "$1" = install ] && for p in "$@"; do [[ $p == -* || $p == install ]] || echo "$p" >> {state}/installed; done
            exit 0""",
        "dpkg-query": f"""#!/bin/bash
            pkg=${{@: -1}}
            if grep -qx "$pkg" {state}/installed 2>/dev/null; then printf 'install ok installed'; exit 0; fi
            exec /usr/bin/dpkg-query "$@" """,
        "raspi-config": f"""#!/bin/bash
            echo "raspi-config $*" >> {state}/calls
            source <(tr ' ' '\\n' < {state}/serial)
            case "$2" in
              get_serial_cons) echo "$cons" ;;
              get_serial_hw) echo "$hw" ;;
              do_serial_cons) cons=$3 ;;
              do_serial_hw) hw=$3 ;;
            esac
            echo "cons=$cons hw=$hw" > {state}/serial""",
    }
    for name, text in scripts.items():
        (stubs / name).write_text(textwrap.dedent(text).lstrip())
        (stubs / name).chmod(0o755)
    return stubs, state


def test_provision_for_real_is_idempotent(tmp_path, provision_stubs):
    stubs, stub_state = provision_stubs
    user = f"impsprov{os.getpid() % 100000}"
    root = tmp_path / "box"
    env = provision_env(root, IMPS_USER=user, IMPS_GROUPS="dialout audio",
                        PATH=f"{stubs}:{os.environ['PATH']}")
    try:
        ok(subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True, env=env))
        assert not root.exists()
        assert not (stub_state / "calls").exists() or "do_serial" not in (stub_state / "calls").read_text()
        first = ok(subprocess.run(["bash", str(PROVISION), "--on-box"], capture_output=True, text=True,
                                  env=env))
        groups = run(["id", "-nG", user]).stdout.split()
        assert {"dialout", "audio", user} <= set(groups)
        assert run(["getent", "passwd", user]).stdout.strip().endswith(":/usr/sbin/nologin")
        state = root / "var-lib-imps"
        assert (state / "logs").stat().st_mode & 0o7777 == 0o2770
        assert pwd.getpwuid((state / "models").stat().st_uid).pw_name == user
        assert os.readlink(state / "models" / "current.tflite") == \
            f"{root}/opt-imps/current/device/imps/models/default.tflite"
        assert (root / "opt-imps" / "releases").is_dir() and (root / "opt-imps" / "envs").is_dir()
        assert f'path = "{state}/models/current.tflite"' in (root / "etc" / "imps" / "box.toml").read_text()
        from imps.box.config import load_config  # the written config is valid for this release's box
        config = load_config(root / "etc" / "imps" / "box.toml")
        assert config.serial.enabled and config.gpio.backend == "auto" and config.actuators.enabled
        assert (stub_state / "serial").read_text().strip() == "cons=1 hw=0"
        rule = root / "etc" / "polkit-1" / "rules.d" / "50-imps-poweroff.rules"
        assert rule.stat().st_mode & 0o777 == 0o644 and f'subject.user == "{user}"' in rule.read_text()
        assert "reboot the box once" in first.stdout
        # The page: a generated password printed once, kept only as a hash that the page's own code accepts.
        from imps.web.auth import read_password_file, verify_password
        password = re.search(r"the page's password, shown this once \(kept only as a hash\): (\S+)",
                             first.stdout).group(1)
        hashed = read_password_file(state / "web" / "password")
        assert password not in hashed and verify_password(password, hashed)
        assert (state / "web" / "password").stat().st_mode & 0o777 == 0o600
        assert (state / "web" / "key.pem").stat().st_mode & 0o777 == 0o600
        assert "BEGIN CERTIFICATE" in (state / "web" / "cert.pem").read_text()
        assert "web: certificate sha256 Fingerprint=" in first.stdout
        assert config.status.file == "/run/imps/status.json"

        (root / "etc" / "imps" / "box.toml").write_text("# edited by hand\n")
        second = ok(subprocess.run(["bash", str(PROVISION), "--on-box"], capture_output=True, text=True,
                                   env=env))
        changes = [line for line in second.stdout.splitlines() if line.startswith("+")]
        assert changes == [], f"a second run changed things:\n{second.stdout}"
        assert (root / "etc" / "imps" / "box.toml").read_text() == "# edited by hand\n"
        assert "reboot" not in second.stdout
    finally:
        subprocess.run(["userdel", user], capture_output=True)


def test_provision_over_ssh_dry_run(sshd, tmp_path):
    env = provision_env(tmp_path / "box", IMPS_SSH_OPTS=sshd.ssh_opts, IMPS_USER="impsnobody")
    r = ok(subprocess.run(["bash", str(PROVISION), "--dry-run", sshd.host], capture_output=True, text=True,
                          env=env, timeout=60))
    assert "dry run: nothing is changed" in r.stdout
    assert f"{sshd.user} deploys" in r.stdout            # the ssh login becomes the admin
    assert "+ useradd" in r.stdout and "== provisioned" in r.stdout
    assert not (tmp_path / "box").exists()


def test_scripts_are_shellcheck_clean():
    # Every shell script the project runs: the box's, the VM bed's and CI's own.
    scripts = [REPO / "deploy" / "deploy.sh", PROVISION, *sorted((REPO / "vm").glob("*.sh")),
               REPO / ".ci" / "run", REPO / "tests" / "system-deps.sh"]
    for script in scripts:
        ok(subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True))
    r = subprocess.run(["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_provision_midi_uart_moves_bluetooth_off_the_pl011_once(tmp_path):
    """IMPS_MIDI_UART=1: dtoverlay=disable-bt in config.txt (DIN MIDI on GPIO 14/15), once; no clock overlay."""
    boot = tmp_path / "config.txt"
    boot.write_text("[all]\nenable_uart=1\n")
    env = provision_env(tmp_path / "box", IMPS_USER="impsnobody", IMPS_MIDI_UART="1", IMPS_BOOT_CONFIG=str(boot))
    dry = ok(subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True, env=env))
    assert "dtoverlay=disable-bt" in dry.stdout and boot.read_text() == "[all]\nenable_uart=1\n"
    script = PROVISION.read_text()
    body = script[script.index("midi_uart() {"):script.index("\n}\n", script.index("midi_uart() {")) + 3]
    for _ in range(2):       # the step alone, for real, twice: it appends once
        ok(subprocess.run(["bash", "-c", "set -euo pipefail; DRY_RUN=0; REBOOT=0\n"
                           "say() { echo \"== $*\"; }; run() { \"$@\"; }\n" + body + "midi_uart"],
                          capture_output=True, text=True, env=env))
    text = boot.read_text()
    assert text.count("dtoverlay=disable-bt") == 1 and "midi-uart" not in text
    off = ok(subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True,
                            env=provision_env(tmp_path / "box", IMPS_USER="impsnobody", IMPS_BOOT_CONFIG=str(boot))))
    assert "MIDI UART: not asked for" in off.stdout


def provision_array(name: str) -> list:
    return re.search(rf"^{name}=\((.*)\)$", PROVISION.read_text(), re.M).group(1).split()


def test_every_device_group_the_unit_allows_is_loaded_at_boot_or_built_in():
    """The joint between imps.service and provisioning. systemd resolves DeviceAllow=char-NAME
    from /proc/devices once, when the unit starts: a group whose driver loads later stays
    denied (a USB board found at boot after the box started gave EPERM in the VM)."""
    unit = (REPO / "deploy" / "systemd" / "imps.service").read_text()
    allowed = set(re.findall(r"^DeviceAllow=char-(\S+)", unit, re.M))
    loaded = {pair.split("=")[0] for pair in provision_array("DEVICE_DRIVERS")}
    assert allowed == loaded | set(provision_array("BUILT_IN_DEVICES")), \
        "each DeviceAllow=char-NAME needs its driver in DEVICE_DRIVERS (or NAME in BUILT_IN_DEVICES)"
    assert not loaded & set(provision_array("BUILT_IN_DEVICES"))


def test_provision_loads_the_drivers_this_kernel_has(tmp_path):
    """What a kernel lacks is left out of modules-load.d (a missing module would fail the
    boot's systemd-modules-load), and said; the rest is written. `modprobe -n` answers for
    a kernel with usbserial and snd but no cdc_acm (this machine's container has none)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "modprobe").write_text('#!/bin/sh\n[ "$1" = -n ] || exit 3\n'
                                      'case "$3" in usbserial|snd) exit 0;; *) exit 1;; esac\n')
    (bin_dir / "modprobe").chmod(0o755)
    root = tmp_path / "box"
    env = provision_env(root, IMPS_USER="impsbox")
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    r = ok(subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True, env=env))
    conf = dry_run_file(r.stdout, root / "etc" / "modules-load.d" / "imps.conf")
    modules = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert modules == ["usbserial", "snd"]
    assert "drivers: not in this kernel, left out: cdc_acm" in r.stdout
    assert "drivers: usbserial snd load at boot" in r.stdout


def provision_sudo_commands(tmp_path) -> list[str]:
    """The commands provisioning lets the admin run as root without a password (from its dry run)."""
    r = ok(subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True,
                          env=provision_env(tmp_path / "box", SUDO_USER="nobody", IMPS_USER="impsnobody")))
    text = dry_run_file(r.stdout.replace("(mode 0644)", "(mode 0644)"), tmp_path / "box" / "etc" / "sudoers.d" /
                        "60-imps-deploy")
    alias = text.split("Cmnd_Alias IMPS_DEPLOY = ", 1)[1].split("\nnobody ALL=(root) NOPASSWD: IMPS_DEPLOY")[0]
    assert "nobody ALL=(root) NOPASSWD: IMPS_DEPLOY" in text
    return [c.strip() for c in alias.replace("\\\n", "").split(",")]


def test_every_sudo_call_of_deploy_and_status_is_in_provisionings_sudo_list(box, tmp_path):
    """Provisioning takes away the blanket passwordless sudo (issue #27): what deploy.sh and
    `make status` run through sudo must each be in the list it leaves, as sudo would match it
    (`*` any text; the command by its full path, as secure_path finds it)."""
    import fnmatch
    allowed = provision_sudo_commands(tmp_path)
    ok(box.deploy())
    ok(subprocess.run(["bash", str(box.source / "deploy" / "deploy.sh"), "status", box.sshd.host],
                      capture_output=True, text=True, env=box.env()))
    calls = [c.removeprefix("-n ") for c in box.sudo_calls.read_text().splitlines()]
    assert calls and any(c.startswith("install ") for c in calls)
    for call in calls:
        command = f"/usr/bin/{call}".replace(str(box.units), "/etc/systemd/system")
        assert any(fnmatch.fnmatchcase(command, pattern) for pattern in allowed), \
            f"deploy runs `sudo {call}`, which provisioning's sudoers does not allow"


def test_provisioning_hardens_sshd_and_sudo_where_it_can(tmp_path):
    r = ok(subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True,
                          env=provision_env(tmp_path / "box", SUDO_USER="nobody", IMPS_USER="impsnobody")))
    # nobody has no key: passwords are left on rather than locking the admin out.
    assert "passwords left on" in r.stdout
    # The sshd fragment it writes for an admin with a key: keys only, no root, and sshd accepts it.
    script = PROVISION.read_text()
    fragment = script.split('content="# Written by IMPS provision.sh: keys only, no root login.\n', 1)[1].split('"', 1)[0]
    assert set(fragment.splitlines()) == {"PermitRootLogin no", "PasswordAuthentication no",
                                          "KbdInteractiveAuthentication no", "PubkeyAuthentication yes"}
    sshd_conf = tmp_path / "sshd_config"
    sshd_conf.write_text(fragment + "\n")
    keys = tmp_path / "host_key"
    ok(subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys)], capture_output=True))
    ok(subprocess.run([SSHD, "-t", "-f", str(sshd_conf), "-h", str(keys)], capture_output=True, text=True))
