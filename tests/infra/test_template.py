"""template.yaml: translates with the SAM translator, passes cfn-lint, and names handlers that exist."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from cfnlint import api as cfnlint_api
from samtranslator.translator.transform import transform

from functions.app import ROUTERS
from videoapi.settings import PROJECT_ROOT, Settings

TEMPLATE = PROJECT_ROOT / "template.yaml"


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, ...) read as their long forms."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        return {name: value.split(".", 1) if suffix == "GetAtt" else value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


class NoManagedPolicies:
    def load(self):
        return {}


def test_cfn_lint_finds_no_errors():
    matches = cfnlint_api.lint_file(Path(TEMPLATE))
    errors = [m for m in matches if m.rule.id.startswith("E")]
    assert not errors, "\n".join(str(m) for m in errors)


def test_sam_translates_to_cloudformation(template, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator resolves AWS::Region itself
    params = {"RedisUrl": "rediss://example:6379/0", "SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    packaged = {**template, "Globals": {"Function": {**template["Globals"]["Function"]}}}
    packaged["Globals"]["Function"]["CodeUri"] = "s3://artifacts/videoapi.zip"  # what `sam package` does
    output = transform(packaged, params, NoManagedPolicies())
    kinds = {r["Type"] for r in output["Resources"].values()}
    assert {"AWS::Lambda::Function", "AWS::ApiGatewayV2::Api", "AWS::S3::Bucket", "AWS::Lambda::Permission"} <= kinds
    functions = [r for r in output["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == 5 and all(f["Properties"]["Timeout"] <= 60 for f in functions)


def test_every_handler_exists_and_imports(template):
    handlers = [
        r["Properties"]["Handler"] for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"
    ]
    assert len(handlers) == 5
    for handler in handlers:
        module, function = handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), function)), handler


def test_http_routes_are_the_apps_routes(template):
    routes = {
        (e["Properties"]["Method"], e["Properties"]["Path"])
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
        for e in r["Properties"].get("Events", {}).values()
        if e["Type"] == "HttpApi"
    }
    app_routes = {
        (method, route.path.replace("{job_id}", "{job_id}"))
        for router in ROUTERS.values()
        for route in router.routes
        for method in route.methods
    }
    assert routes == app_routes


def test_s3_trigger_prefix_matches_the_settings(template):
    event = template["Resources"]["S3TriggerFunction"]["Properties"]["Events"]["Incoming"]["Properties"]
    (rule,) = event["Filter"]["S3Key"]["Rules"]
    assert rule == {"Name": "prefix", "Value": Settings().trigger_prefix}
    assert event["Events"] == "s3:ObjectCreated:*"


def test_least_privilege(template):
    """No function gets s3:* or a whole-bucket object grant; the trigger needs no S3 access at all."""
    resources = template["Resources"]
    assert "Policies" not in resources["S3TriggerFunction"]["Properties"]
    for name in ("UploadFunction", "JobsFunction", "BatchesFunction"):
        for policy in resources[name]["Properties"]["Policies"]:
            for statement in policy["Statement"]:
                assert all(action != "s3:*" and not action.endswith(":*") for action in statement["Action"])
                for resource in (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                ):
                    arn = resource["Fn::Sub"]
                    prefixes = ("uploads", "incoming", "results", "batches")
                    assert arn.endswith("-media") or arn.rsplit("/", 2)[-2] in prefixes
    upload_actions = resources["UploadFunction"]["Properties"]["Policies"][0]["Statement"][0]["Action"]
    assert upload_actions == ["s3:PutObject"]


def test_lambda_api_logs_json_and_sends_request_metrics_as_emf(template):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    ours = ("VIDEOAPI_LOG_FORMAT", "VIDEOAPI_EMF_METRICS")
    settings = Settings(**{k.removeprefix("VIDEOAPI_").lower(): env[k] for k in ours})
    assert settings.log_format == "json" and settings.emf_metrics is True
    filters = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::Logs::MetricFilter"}
    assert filters
    for resource in filters.values():
        group = resource["Properties"]["LogGroupName"]["Ref"]
        assert template["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
        assert "$.level" in resource["Properties"]["FilterPattern"]  # a field of our JSON log lines
