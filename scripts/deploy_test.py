"""`make deploy-test`: build the three images and run the compose stack on this machine, as an
air-gapped site would: a Debian mirror and PyPI (or a PyPI mirror), no other registry.

1. Tools. docker.io, debootstrap and docker-compose come from Debian when missing, and dockerd
   is started when no engine answers.
2. Base. `docmill-base:bookworm` is bootstrapped once (`debootstrap --variant=minbase
   bookworm`, then `docker import`) and kept as that image tag; --rebuild-base redoes it.
3. Images. worker, producer and converter (BAKE_MODELS=pp-ocrv6-int8det), then the stand-ins of
   docker/test/services.Dockerfile (Redis, moto's S3 server, Prometheus), all on that base,
   with BuildKit and no frontend image. The host's CA bundle reaches pip as a build secret.
   In the worker image, the CUDA provider's libraries must all resolve but the driver's.
4. Stack. docker/compose.yaml with docker/compose.test.yaml, two CPU workers. Checked: the
   converter published the default set, the workers turn healthy, the demo job and a job over
   the sample images finish with every result in the bucket, and Prometheus scrapes both
   workers.
5. Fault. Another job over the same images; one worker container is killed (docker kill)
   mid-job, and still no result is lost.
6. Hygiene. Every container runs as uid 10001. No secret appears in `docker inspect`,
   `docker history` or the logs. The host's CA bundle is in no image.
7. `compose down -v` leaves no container, network or volume of the project.

Image sizes, build times, the stack's images/s and the recovery time are printed and written
to out/deploy-test/report.json. Everything is logged under out/deploy-test/. Needs root, for
apt, debootstrap and the engine. Python's standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = ROOT / "docker"
WORK = ROOT / "out" / "deploy-test"
PROJECT = "docmill-dt"
BASE_TAG = "docmill-base:bookworm"
TAG = "dev"
LABEL = "org.docmill.deploy-test=1"  # on the images built here: what a rebuild untags is pruned
DEFAULT_SET = "pp-ocrv6-int8det"
DOCMILL_IMAGES = ("producer", "worker", "converter")
TEST_IMAGES = ("redis", "s3", "prometheus")
UID = "10001"
WORKERS = 2
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "docmill"
T0 = time.monotonic()


class Failed(Exception):
    """A check that did not hold; the message says which."""


def say(msg: str) -> None:
    print(f"deploy-test [{time.monotonic() - T0:6.0f}s] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], *, check: bool = True, capture: bool = True, env: dict[str, str] | None = None,
        input: str | bytes | None = None, timeout: float | None = None, log: Path | None = None,
        ) -> subprocess.CompletedProcess:
    """Run argv; with `log`, stdout and stderr go to that file instead of being captured."""
    text = not isinstance(input, bytes)
    if log is not None:
        with open(log, "ab") as out:
            out.write(f"$ {shlex.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, input=input,
                                  timeout=timeout, check=False)
    else:
        proc = subprocess.run(argv, capture_output=capture, text=text, env=env, input=input,
                              timeout=timeout, check=False)
    if check and proc.returncode != 0:
        detail = f"; see {log}" if log else (f": {(proc.stderr or proc.stdout or '').strip()[-2000:]}" if capture else "")
        shown = shlex.join(a if len(a) < 80 else a[:60] + "..." for a in argv[:6])
        raise Failed(f"`{shown}{' ...' if len(argv) > 6 else ''}` exited {proc.returncode}{detail}")
    return proc


def wait_for(what: str, ready, timeout: float, interval: float = 2.0):  # type: ignore[no-untyped-def]
    """Poll ready() until it returns something truthy; Failed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# --- 1. tools ------------------------------------------------------------------------------

def ensure_packages() -> list[str]:
    """Debian's docker.io, debootstrap and docker-compose, installed only when missing."""
    needs = {"dockerd": "docker.io", "debootstrap": "debootstrap"}
    missing = [pkg for cmd, pkg in needs.items() if not (shutil.which(cmd) or Path(f"/usr/sbin/{cmd}").exists())]
    if not compose_v2(docker_cli(required=False)) and not shutil.which("docker-compose"):
        missing.append("docker-compose")
    if missing:
        say(f"installing Debian's {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env, log=WORK / "apt.log")
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env,
            log=WORK / "apt.log")
    return missing


def docker_cli(required: bool = True) -> str | None:
    """A docker CLI that builds with BuildKit: one with buildx, or a CLI older than 23 (where
    BuildKit is built in, as in Debian's docker.io 20.10). A newer CLI without buildx cannot."""
    for cand in dict.fromkeys(filter(None, [shutil.which("docker"), "/usr/bin/docker"])):
        if not Path(cand).exists():
            continue
        if subprocess.run([cand, "buildx", "version"], capture_output=True).returncode == 0:
            return cand
        version = subprocess.run([cand, "--version"], capture_output=True, text=True).stdout
        try:
            major = int(version.split("version ", 1)[1].split(".", 1)[0])
        except (IndexError, ValueError):
            continue
        if major < 23:
            return cand
    if required:
        raise Failed("no docker CLI here can build with BuildKit: install buildx, or Debian's docker.io")
    return None


def compose_v2(cli: str | None) -> bool:
    return bool(cli) and subprocess.run([cli, "compose", "version"], capture_output=True).returncode == 0


def engine_answers(cli: str) -> bool:
    return subprocess.run([cli, "info"], capture_output=True).returncode == 0


def ensure_engine(cli: str) -> str:
    """Start dockerd when no engine answers: systemd's unit where systemd runs, else dockerd
    itself in the background (log: out/deploy-test/dockerd.log)."""
    if engine_answers(cli):
        return "running"
    if Path("/run/systemd/system").is_dir():
        run(["systemctl", "start", "docker"])
        how = "started (systemctl)"
    else:
        log = open(WORK / "dockerd.log", "ab")  # noqa: SIM115 - dockerd outlives this script
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        how = f"started (dockerd, log {WORK / 'dockerd.log'})"
    wait_for("the Docker engine", lambda: engine_answers(cli), 60, 1)
    return how


# --- 2. base -------------------------------------------------------------------------------

SOURCES = """Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# As Debian's official -slim images: no docs (but their copyright files), man pages or locales.
SLIM = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""


def image_exists(cli: str, ref: str) -> bool:
    return subprocess.run([cli, "image", "inspect", ref], capture_output=True).returncode == 0


def ensure_base(cli: str, rebuild: bool) -> dict:
    """docmill-base:bookworm from Debian's packages alone, cached as that image tag."""
    if image_exists(cli, BASE_TAG) and not rebuild:
        say(f"base: {BASE_TAG} cached (--rebuild-base redoes it)")
        return {"cached": True, "seconds": 0.0}
    mirror = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    say(f"base: debootstrap --variant=minbase bookworm from {mirror}")
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="base-", dir=CACHE))
    try:
        rootfs = scratch / "rootfs"
        run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror], log=WORK / "debootstrap.log")
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(SOURCES.format(mirror=mirror, security=security))
        policy = rootfs / "usr/sbin/policy-rc.d"  # no service starts inside an image build
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(SLIM)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run([cli, "import", "--change", 'CMD ["bash"]',
                              "--message", f"debootstrap --variant=minbase bookworm {mirror}", "-", BASE_TAG],
                             stdin=tar.stdout, capture_output=True, text=True)
        tar.stdout.close()
        if tar.wait() != 0 or imp.returncode != 0:
            raise Failed(f"docker import of the base failed: {imp.stderr.strip()}")
    finally:
        subprocess.run(["rm", "-rf", str(scratch)], check=False)
    seconds = time.monotonic() - started
    say(f"base: {BASE_TAG} bootstrapped in {seconds:.0f} s")
    return {"cached": False, "seconds": round(seconds, 1)}


# --- 3. images -----------------------------------------------------------------------------

def build_ca() -> Path | None:
    """The CA bundle pip trusts on this host: DOCMILL_BUILD_CA, PIP_CERT, then the system's."""
    for cand in (os.environ.get("DOCMILL_BUILD_CA"), os.environ.get("PIP_CERT"),
                 os.environ.get("REQUESTS_CA_BUNDLE"), "/etc/ssl/certs/ca-certificates.crt"):
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


def pip_index() -> dict[str, str]:
    """PIP_INDEX_URL and PIP_TRUSTED_HOST as pip on this host has them (environment first,
    then pip's config files), for the build; file:// indexes are not reachable from a build."""
    found = {k: os.environ[k] for k in ("PIP_INDEX_URL", "PIP_TRUSTED_HOST") if os.environ.get(k)}
    if "PIP_INDEX_URL" not in found:
        for py in filter(None, (shutil.which("python3"), sys.executable)):
            proc = subprocess.run([py, "-m", "pip", "config", "list"], capture_output=True, text=True)
            for line in proc.stdout.splitlines():
                key, _, value = line.partition("=")
                value = value.strip().strip("'\"")
                if key.endswith(".index-url") and not value.startswith("file:"):
                    found.setdefault("PIP_INDEX_URL", value)
                if key.endswith(".trusted-host"):
                    found.setdefault("PIP_TRUSTED_HOST", value)
            if proc.returncode == 0:
                break
    return found


def build(cli: str, name: str, dockerfile: str, tag: str, args: dict[str, str], target: str | None,
          ca: Path | None) -> dict:
    argv = [cli, "build", "--progress=plain", "-f", dockerfile, "-t", tag, "--label", LABEL]
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        if os.environ.get(proxy):
            argv += ["--build-arg", proxy]
    if ca is not None:
        argv += ["--secret", f"id=ca,src={ca}"]
    if os.environ.get("DOCMILL_BUILD_NETRC"):
        argv += ["--secret", f"id=netrc,src={os.environ['DOCMILL_BUILD_NETRC']}"]
    if target:
        argv += ["--target", target]
    argv.append(str(ROOT))
    log = WORK / f"build-{name}.log"
    log.unlink(missing_ok=True)
    started = time.monotonic()
    run(argv, env=dict(os.environ, DOCKER_BUILDKIT="1"), log=log, timeout=3600)
    seconds = time.monotonic() - started
    size = int(run([cli, "image", "inspect", "-f", "{{.Size}}", tag]).stdout)
    say(f"image {tag}: built in {seconds:.0f} s, {size / 1e6:.0f} MB")
    return {"tag": tag, "build_s": round(seconds, 1), "size_mb": round(size / 1e6)}


def build_all(cli: str) -> dict:
    ca = build_ca()
    index = pip_index()
    say(f"pip in the builds: index {index.get('PIP_INDEX_URL', 'https://pypi.org/simple (default)')}, "
        f"CA bundle {ca or 'none (certifi)'} as build secret `ca`")
    common = {"BASE_IMAGE": BASE_TAG, **index}
    images = {}
    for name in DOCMILL_IMAGES:
        args = dict(common, BAKE_MODELS=DEFAULT_SET) if name == "converter" else common
        images[name] = build(cli, name, f"docker/{name}.Dockerfile", f"docmill-{name}:{TAG}", args, None, ca)
    for name in TEST_IMAGES:
        images[f"test-{name}"] = build(cli, f"test-{name}", "docker/test/services.Dockerfile",
                                       f"docmill-test-{name}:{TAG}", common, name, ca)
    run([cli, "image", "prune", "-f", "--filter", f"label={LABEL}"])  # earlier builds' images, now untagged
    return images


def check_cuda_libraries(cli: str) -> dict:
    """The worker's CUDA provider, and the NVIDIA wheels it loads, resolve every library in
    the image but libcuda.so.1, which the NVIDIA container toolkit mounts from the driver."""
    script = ("cd /opt/venv/lib/python3.11/site-packages && for f in "
              "onnxruntime/capi/libonnxruntime_providers_cuda.so nvidia/*/lib/*.so*; "
              "do ldd \"$f\" | grep 'not found'; done; true")
    out = run([cli, "run", "--rm", "--entrypoint", "sh", f"docmill-worker:{TAG}", "-c", script]).stdout
    missing = sorted({line.split()[0] for line in out.splitlines() if line.strip()})
    if missing != ["libcuda.so.1"]:
        raise Failed(f"the worker image's CUDA libraries miss {missing}, not just the driver's libcuda.so.1")
    providers = run([cli, "run", "--rm", "--entrypoint", "python", f"docmill-worker:{TAG}", "-c",
                     "import onnxruntime; print(','.join(onnxruntime.get_available_providers()))"]).stdout.strip()
    if "CUDAExecutionProvider" not in providers:
        raise Failed(f"onnxruntime in the worker image offers no CUDA provider: {providers}")
    say("worker image: the CUDA provider's libraries all resolve but libcuda.so.1 (the driver's)")
    return {"missing": missing, "providers": providers.split(",")}


# --- 4. stack ------------------------------------------------------------------------------

class Stack:
    def __init__(self, cli: str, secrets_dir: Path, inputs: Path):
        self.cli = cli
        base = [cli, "compose"] if compose_v2(cli) else [shutil.which("docker-compose") or "docker-compose"]
        self.compose = [*base, "-p", PROJECT, "-f", str(DOCKER_DIR / "compose.yaml"),
                        "-f", str(DOCKER_DIR / "compose.test.yaml")]
        self.env = dict(os.environ, DOCMILL_SECRETS=str(secrets_dir), DEPLOY_TEST_INPUTS=str(inputs),
                        DOCMILL_BASE_IMAGE=BASE_TAG, DOCKER_BUILDKIT="1")
        self.log = WORK / "compose.log"

    def __call__(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        return run([*self.compose, *args], env=self.env, check=check, timeout=timeout)

    def containers(self, service: str | None = None, running: bool = False) -> list[str]:
        argv = [self.cli, "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={PROJECT}"]
        if not running:
            argv.append("-a")
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = run(argv).stdout.split()
        return sorted(ids, key=lambda i: self.inspect(i)["Name"]) if ids else []

    def inspect(self, container: str) -> dict:
        return json.loads(run([self.cli, "inspect", container]).stdout)[0]

    def one(self, service: str) -> str:
        found = self.containers(service)
        if not found:
            raise Failed(f"no {service} container")
        return found[0]

    def exited_ok(self, service: str) -> bool:
        state = self.inspect(self.one(service))["State"]
        if state["Status"] == "exited" and state["ExitCode"] != 0:
            raise Failed(f"{service} exited {state['ExitCode']}: {self.logs(service)[-3000:]}")
        return state["Status"] == "exited"

    def logs(self, service: str) -> str:
        proc = self("logs", "--no-color", service, check=False)
        return proc.stdout + proc.stderr

    def healthy_workers(self) -> list[str]:
        found = self.containers("worker", running=True)
        health = [self.inspect(c)["State"].get("Health", {}).get("Status") for c in found]
        return found if len(found) == WORKERS and all(h == "healthy" for h in health) else []

    def py(self, script: str, *args: str) -> str:
        """A Python snippet in a running worker container (boto3, redis, the secrets)."""
        worker = self.containers("worker", running=True)[0]
        return run([self.cli, "exec", worker, "python", "-c", script, *args], timeout=120).stdout

    def status(self, job: str) -> dict:
        worker = self.containers("worker", running=True)[0]
        return json.loads(run([self.cli, "exec", worker, "docmill", "status", job, "--json"], timeout=60).stdout)

    def produce(self, prefix: str, out: str, job: str) -> str:
        proc = self("run", "--rm", "-T", "producer", "produce", prefix, "--out", out,
                     "--models", f"s3://models/sets/{DEFAULT_SET}", "--chunk", "2", "--job", job)
        return proc.stdout.strip().splitlines()[-1]

    def wait_job(self, job: str, timeout: float) -> dict:
        return wait_for(f"job {job} to finish", lambda: (s := self.status(job))["finished"] and s, timeout, 2)


RESULTS_SCRIPT = """
import json, sys, boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["DOCMILL_S3_ENDPOINT_URL"])
bucket, prefix = sys.argv[1], sys.argv[2]
found = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for obj in page.get("Contents", []):
        key = obj["Key"][len(prefix):]
        if key.startswith("_docmill/") or not key.endswith(".json"):
            continue
        doc = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        found[key] = {"error": doc["error"], "lines": len(doc["lines"]), "models": f'{doc["models"]["set"]}@{doc["models"]["version"]}'}
print(json.dumps(found))
"""


def check_results(stack: Stack, out_prefix: str, inputs: list[str]) -> dict:
    """Every input has its result in the bucket, without an error."""
    found = json.loads(stack.py(RESULTS_SCRIPT, "results", out_prefix))
    expected = {f"{key}.json" for key in inputs}
    missing = sorted(expected - set(found))
    errors = {k: v["error"] for k, v in found.items() if v["error"]}
    if missing or errors:
        raise Failed(f"s3://results/{out_prefix}: {len(missing)} results missing {missing[:5]}, errors {errors}")
    return {"results": len(found), "lines": sum(v["lines"] for v in found.values()),
            "models": sorted({v["models"] for v in found.values()})}


def prepare_inputs(cli: str, shared: Path, count: int) -> tuple[Path, list[str], str]:
    """The job's images: the first `count` SROIE receipts of ../shared, else demo pages made
    by the producer image (in 4 folders, so a job has more than one task per worker)."""
    inputs = WORK / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    sroie = shared / "data" / "sroie_sample" / "images"
    if sroie.is_dir() and any(sroie.glob("*.jpg")):
        for path in sorted(sroie.glob("*.jpg"))[:count]:
            shutil.copyfile(path, inputs / path.name)
        source = f"{sroie} (first {count})"
    else:
        os.chown(inputs, int(UID), int(UID))
        for i in range(4):
            run([cli, "run", "--rm", "-v", f"{inputs}:/home/docmill/in", f"docmill-producer:{TAG}", "samples",
                 f"/home/docmill/in/set{i}"])
        for junk in inputs.rglob("truth.json"):
            junk.unlink()
        source = f"generated by `docmill samples` ({shared / 'data'} is absent)"
    for path in inputs.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    inputs.chmod(0o755)
    keys = sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*") if p.is_file())
    return inputs, keys, source


def write_secrets() -> tuple[Path, dict[str, str]]:
    """Fresh random secrets, one file each, readable by uid 10001 only."""
    folder = WORK / "secrets"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    password = secrets.token_hex(20)
    values = {"REDIS_PASSWORD": password,
              "DOCMILL_BROKER_URL": f"redis://:{password}@redis:6379/0",
              "AWS_ACCESS_KEY_ID": "docmill-" + secrets.token_hex(4),
              "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20)}
    for name, value in values.items():
        path = folder / name
        path.write_text(value + "\n")
        os.chown(path, int(UID), int(UID))
        path.chmod(0o400)
    return folder, values


def prometheus_targets(stack: Stack) -> list[dict]:
    if stack.exited_ok("prometheus") or not stack.containers("prometheus", running=True):
        raise Failed(f"prometheus is not running: {stack.logs('prometheus')[-2000:]}")
    prom = stack.containers("prometheus", running=True)[0]
    proc = run([stack.cli, "exec", prom, "wget", "-q", "-O", "-", "http://127.0.0.1:9090/api/v1/targets"], check=False)
    if proc.returncode != 0:
        return []
    return [t for t in json.loads(proc.stdout)["data"]["activeTargets"] if t["labels"].get("job") == "docmill-worker"]


def run_stack(cli: str, values: dict[str, str], secrets_dir: Path, shared: Path, count: int,
              keep: bool) -> dict:
    report: dict = {}
    inputs, keys, source = prepare_inputs(cli, shared, count)
    say(f"inputs: {len(keys)} images, {source}")
    report["inputs"] = {"images": len(keys), "source": source}
    stack = Stack(cli, secrets_dir, inputs)
    stack("down", "-v", "--remove-orphans", check=False)
    try:
        started = time.monotonic()
        stack("up", "-d", "--no-build", "--scale", f"worker={WORKERS}", timeout=1200)
        wait_for("the converter job", lambda: stack.exited_ok("converter"), 600)
        published = run([cli, "logs", stack.one("converter")])
        say(f"converter: {published.stderr.strip().splitlines()[-1]}")
        workers = wait_for(f"{WORKERS} healthy workers", stack.healthy_workers, 300, 3)
        report["stack_up_s"] = round(time.monotonic() - started, 1)
        say(f"workers: {WORKERS} healthy, {report['stack_up_s']:.0f} s after `up`")

        wait_for("the producer job", lambda: stack.exited_ok("producer"), 300)
        # The job id is the producer's last line on stdout (progress goes to stderr).
        demo_job = run([cli, "logs", stack.one("producer")]).stdout.strip().splitlines()[-1]
        state = stack.wait_job(demo_job, 600)
        report["demo_job"] = {"job": demo_job, **{k: state[k] for k in ("total", "done", "failed")},
                              **check_results(stack, "demo/", [k for k in ls_samples(stack, "demo/")])}
        if state["failed"] or state["done"] != state["total"] or state["total"] < 5:
            raise Failed(f"demo job: {state}")
        say(f"demo job {demo_job}: {state['done']}/{state['total']} done, every result in s3://results/demo/")

        job = f"dt-inputs-{int(time.time())}"
        started = time.monotonic()
        stack.produce("s3://samples/inputs/", "s3://results/inputs/", job)
        state = stack.wait_job(job, 900)
        wall = time.monotonic() - started
        if state["failed"] or state["done"] != len(keys):
            raise Failed(f"inputs job: {state}")
        report["inputs_job"] = {"job": job, "done": state["done"], "images_per_s": state["images_per_s"],
                                "job_s": state["elapsed_s"], "wall_s": round(wall, 1),
                                **check_results(stack, "inputs/", keys)}
        say(f"inputs job {job}: {state['done']} images at {state['images_per_s']} images/s "
            f"({WORKERS} CPU workers), every result in s3://results/inputs/")

        targets = wait_for("Prometheus to scrape both workers",
                           lambda: (t := prometheus_targets(stack)) and len(t) == WORKERS
                           and all(x["health"] == "up" for x in t) and t, 120, 5)
        report["prometheus_targets_up"] = len(targets)
        say(f"prometheus: {len(targets)} worker targets up")

        report["fault"] = fault_run(stack, keys)
        report["uid"] = check_uids(stack)
        report["secrets"] = check_secrets(stack, values)
    except Exception:
        for service in ("converter", "worker", "producer", "buckets", "minio", "redis"):
            (WORK / f"logs-{service}.txt").write_text(stack.logs(service))
        say(f"failed: the services' logs are in {WORK}/logs-*.txt")
        raise
    finally:
        if keep:
            say(f"--keep: the stack stays up (docker-compose -p {PROJECT} ... down -v stops it)")
        else:
            report["down"] = down(stack)
            shutil.rmtree(secrets_dir, ignore_errors=True)  # throwaway values, but no need to keep them
    return report


def ls_samples(stack: Stack, prefix: str) -> list[str]:
    script = ("import boto3, os, sys; s3 = boto3.client('s3', endpoint_url=os.environ['DOCMILL_S3_ENDPOINT_URL']);"
              "print('\\n'.join(o['Key'][len(sys.argv[1]):] for o in s3.list_objects_v2(Bucket='samples', "
              "Prefix=sys.argv[1]).get('Contents', [])))")
    return stack.py(script, prefix).split()


# --- 5. fault ------------------------------------------------------------------------------

def fault_run(stack: Stack, keys: list[str]) -> dict:
    """A job over the inputs; when a quarter is done, one worker container is killed. The
    other worker finds its heartbeat lapsed, re-queues the tasks it held and runs them."""
    job = f"dt-fault-{int(time.time())}"
    started = time.monotonic()
    stack.produce("s3://samples/inputs/", "s3://results/fault/", job)
    first = max(2, len(keys) // 4)
    state = wait_for(f"{first} results of {job}", lambda: (s := stack.status(job))["done"] >= first and s, 600, 1)
    if state["finished"]:
        raise Failed(f"fault job {job} finished before a worker could be killed: use more images")
    victim = stack.containers("worker", running=True)[0]
    name = stack.inspect(victim)["Name"].lstrip("/")
    run([stack.cli, "kill", victim])
    killed_at = time.monotonic()
    done_at_kill = state["done"]
    say(f"fault: killed {name} with {done_at_kill}/{state['total']} done")
    state = stack.wait_job(job, 900)
    recovery = time.monotonic() - killed_at
    victim_log = run([stack.cli, "logs", victim], check=False)
    text = victim_log.stdout + victim_log.stderr
    received, succeeded = text.count("] received"), text.count("] succeeded in")
    if state["failed"] or state["done"] != len(keys):
        raise Failed(f"fault job lost results: {state}")
    results = check_results(stack, "fault/", keys)
    say(f"fault: job {job} finished {recovery:.0f} s after the kill, {state['done']}/{len(keys)} done, "
        f"no result lost (the killed worker had {received - succeeded} tasks in flight)")
    return {"job": job, "killed": name, "done_at_kill": done_at_kill, "tasks_in_flight_at_kill": received - succeeded,
            "recovery_s": round(recovery, 1), "job_s": round(time.monotonic() - started, 1), **results}


# --- 6. hygiene ----------------------------------------------------------------------------

def check_uids(stack: Stack) -> dict:
    """Every container of the project is configured as uid 10001, and the main process of each
    running one really is (its /proc status on the host)."""
    seen = {}
    for cid in stack.containers():
        info = stack.inspect(cid)
        name = info["Name"].lstrip("/")
        user = info["Config"]["User"].split(":")[0]
        if user != UID:
            raise Failed(f"{name} runs as user {user or 'root (unset)'}, not {UID}")
        pid = info["State"]["Pid"]
        if pid:
            uids = next(line.split()[1:] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("Uid:"))
            if set(uids) != {UID}:
                raise Failed(f"{name}: main process runs as uids {uids}")
        seen[name] = "running" if pid else info["State"]["Status"]
    say(f"uid: all {len(seen)} containers run as {UID}")
    return {"containers": len(seen)}


def check_secrets(stack: Stack, values: dict[str, str]) -> dict:
    """No secret value in `docker inspect` (containers and images), `docker history` or the
    logs; and the host's CA bundle, the build secret, is in no image."""
    hay = {}
    for cid in stack.containers():
        hay[f"inspect {cid[:12]}"] = run([stack.cli, "inspect", cid]).stdout
        logs = run([stack.cli, "logs", cid], check=False)
        hay[f"logs {cid[:12]}"] = logs.stdout + logs.stderr
    images = [f"docmill-{n}:{TAG}" for n in DOCMILL_IMAGES] + [f"docmill-test-{n}:{TAG}" for n in TEST_IMAGES]
    for image in images:
        hay[f"inspect {image}"] = run([stack.cli, "image", "inspect", image]).stdout
        hay[f"history {image}"] = run([stack.cli, "history", "--no-trunc", image]).stdout
    sensitive = {k: v for k, v in values.items() if k != "AWS_ACCESS_KEY_ID"}
    for where, text in hay.items():
        for name, value in sensitive.items():
            if value in text:
                raise Failed(f"{name} appears in {where}")
        if "BEGIN CERTIFICATE" in text:
            raise Failed(f"a certificate appears in {where}")
    ca = build_ca()
    checked = 0
    if ca is not None:
        digest = hashlib.sha256(ca.read_bytes()).hexdigest()
        size = ca.stat().st_size
        for image in images:
            proc = run([stack.cli, "run", "--rm", "--user", "0", "--entrypoint", "find", image, "/", "-xdev",
                        "-type", "f", "-size", f"{size}c", "-exec", "sha256sum", "{}", "+"], check=False)
            if digest in proc.stdout:
                raise Failed(f"the host CA bundle {ca} is in {image}: {proc.stdout}")
            checked += 1
    say(f"secrets: none in {len(hay)} inspect/history/log texts; the build CA bundle in none of {checked} images")
    return {"texts_checked": len(hay), "images_checked_for_ca": checked}


def down(stack: Stack) -> dict:
    stack("down", "-v", "--remove-orphans", "--timeout", "60", timeout=600)
    left = {kind: run([stack.cli, kind, "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"]
                      ).stdout.split() for kind in ("network", "volume")}
    left["container"] = stack.containers()
    if any(left.values()):
        raise Failed(f"`down -v` left {left}")
    say("down: no container, network or volume of the project is left")
    return {"left": 0}


# --- report --------------------------------------------------------------------------------

def print_report(report: dict) -> None:
    rows = [("base", "cached" if report["base"]["cached"] else f"bootstrapped in {report['base']['seconds']:.0f} s")]
    for name, image in report["images"].items():
        rows.append((image["tag"], f"{image['size_mb']} MB, built in {image['build_s']:.0f} s"))
    stack = report.get("stack", {})
    if "inputs_job" in stack:
        job = stack["inputs_job"]
        rows.append(("stack images/s", f"{job['images_per_s']} ({job['done']} images, {WORKERS} CPU workers, "
                                       f"job {job['job_s']:.0f} s)"))
    if "fault" in stack:
        rows.append(("fault run", f"worker killed, job done {stack['fault']['recovery_s']:.0f} s later, "
                                  f"{stack['fault']['results']}/{stack['inputs']['images']} results"))
    rows.append(("total", f"{report['total_s']:.0f} s"))
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild-base", action="store_true", help="bootstrap the base again")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                        help="the shared data folder (default ../shared); absent means generated pages")
    parser.add_argument("--images", type=int, default=int(os.environ.get("DEPLOY_TEST_IMAGES", "20")),
                        help="how many sample images a job covers (default 20)")
    parser.add_argument("--keep", action="store_true", help="leave the stack up at the end")
    args = parser.parse_args()
    if os.geteuid() != 0:
        say("FAILED: needs root, for apt-get, debootstrap, dockerd and the secrets' owner (sudo make deploy-test)")
        return 1
    WORK.mkdir(parents=True, exist_ok=True)
    for stale in WORK.glob("logs-*.txt"):  # a failed run's service logs
        stale.unlink()
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        report["installed"] = ensure_packages()
        cli = docker_cli()
        report["engine"] = ensure_engine(cli)
        report["docker"] = run([cli, "version", "--format", "{{.Server.Version}}"]).stdout.strip()
        say(f"engine: Docker {report['docker']} ({report['engine']}), CLI {cli}")
        report["base"] = ensure_base(cli, args.rebuild_base)
        report["images"] = build_all(cli)
        report["cuda_libraries"] = check_cuda_libraries(cli)
        secrets_dir, values = write_secrets()
        report["stack"] = run_stack(cli, values, secrets_dir, args.shared.resolve(), args.images, args.keep)
    except Failed as exc:
        say(f"FAILED: {exc}")
        report["failed"] = str(exc)
        return 1
    finally:
        report["total_s"] = round(time.monotonic() - T0, 1)
        (WORK / "report.json").write_text(json.dumps(report, indent=1))
    print_report(report)
    say(f"passed in {report['total_s']:.0f} s; report in {WORK / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
