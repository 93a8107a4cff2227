import json, os, time
from pathlib import Path
import pytest
@pytest.mark.timeout(3000)
def test_hold(deployed, prefect_server):
    from tests.deploy.test_deployed import deployments_by_flow
    d = deployments_by_flow()["rotate-api-key"]
    Path("/tmp/hold.json").write_text(json.dumps({
        "api": prefect_server.api_url, "deployment": str(d.id), "sandbox": deployed.sandbox,
        "inventory": str(deployed.inventory), "env": {k: v for k, v in os.environ.items() if k.startswith("PREFECT_")},
        "db": str(prefect_server.database_path), "log": str(prefect_server.log_path), "worker_log": str(deployed.worker_log)}))
    while not Path("/tmp/hold.stop").exists():
        time.sleep(1)
