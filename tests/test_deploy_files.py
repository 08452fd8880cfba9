"""No Docker engine or cluster runs here: check the deployment files parse and point at real things."""

import re

import yaml

from f8a_jobs.core.settings import Settings
from tests.conftest import ROOT


def dockerfile_instructions():
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    return [line.split(None, 1) for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfile_copies_files_that_exist_and_runs_the_console_script_as_non_root():
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert keywords[0] == "FROM" and set(keywords) <= {
        "FROM",
        "ENV",
        "WORKDIR",
        "COPY",
        "RUN",
        "USER",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
    }
    for keyword, argument in instructions:
        if keyword == "COPY":
            *sources, _ = argument.split()
            for source in sources:
                assert (ROOT / source).exists(), source
    user = [argument for keyword, argument in instructions if keyword == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert ["ENTRYPOINT", '["f8a-jobs"]'] in instructions
    assert 'f8a-jobs = "f8a_jobs.cli:main"' in (ROOT / "pyproject.toml").read_text()


def test_openshift_template_is_secure_by_default_and_aligns_the_shutdown_limits():
    template = yaml.safe_load((ROOT / "openshift" / "template.yaml").read_text())
    assert template["kind"] == "Template"
    parameters = {parameter["name"]: parameter for parameter in template["parameters"]}
    assert parameters["IMAGE_TAG"].get("required") and "value" not in parameters["IMAGE_TAG"]
    assert parameters["API_TOKEN"]["generate"] == "expression"
    secret = next(obj for obj in template["objects"] if obj["kind"] == "Secret")
    assert set(secret["stringData"]) == {"api-tokens", "broker-url"}
    spec = yaml.safe_load((ROOT / "swagger.yaml").read_text())
    base = spec["servers"][0]["url"]
    graceful = Settings(shutdown_timeout=25).graceful_timeout
    deployments = [obj for obj in template["objects"] if obj["kind"] == "Deployment"]
    assert sorted(d["spec"]["template"]["spec"]["containers"][0]["args"][-1] for d in deployments) == ["api", "scheduler"]
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {item["name"]: item for item in container["env"]}
        assert env["F8A_JOBS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "${DATABASE_SECRET}"
        for name in ("F8A_JOBS_API_TOKENS", "F8A_JOBS_BROKER_URL"):  # never plain values
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "f8a-jobs"
        assert env["F8A_JOBS_SHUTDOWN_TIMEOUT"]["value"] == "25"
        assert pod["terminationGracePeriodSeconds"] > graceful
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"requests", "limits"} <= set(container["resources"])
        for probe in ("livenessProbe", "readinessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert path.startswith(base) and path[len(base) :] in spec["paths"]
        assert container["ports"][0]["containerPort"] == 34000
    used = set(re.findall(r"\$\{\{?(\w+)\}?\}", (ROOT / "openshift" / "template.yaml").read_text()))
    assert used <= set(parameters)
    route = next(obj for obj in template["objects"] if obj["kind"] == "Route")
    assert route["spec"]["tls"]["termination"] == "edge"
