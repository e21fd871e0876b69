# SPDX-License-Identifier: Apache-2.0
# The agent's WebSocket endpoints against node's `ws`, the library the official Daytona SDK uses
# (tests/agent/node/ws-interop.mjs: log follow with the SDK's demultiplexer, PTY, interpreter,
# protocol edge cases). Needs node and the pinned `ws` installed by scripts/npm-deps into a build
# directory; exits 77 (skipped) without them. DT_AGENT = the agent binary; DT_NODE_MODULES =
# the node_modules directory (default: <build>/node/agent/node_modules next to DT_AGENT's
# build, then build/node/agent/node_modules in the source tree).

import os
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
PROGRAM = os.path.join(HERE, "node", "ws-interop.mjs")
sys.path.insert(0, HERE)
from agentclient import Agent  # noqa: E402


def node_modules():
    if os.environ.get("DT_NODE_MODULES"):
        return os.path.abspath(os.environ["DT_NODE_MODULES"])
    candidates = []
    if os.environ.get("DT_AGENT"):
        build = os.path.dirname(os.path.dirname(os.path.abspath(os.environ["DT_AGENT"])))
        candidates.append(os.path.join(build, "node", "agent", "node_modules"))
    if os.environ.get("DT_BUILD_DIR"):
        candidates.append(os.path.join(os.path.abspath(os.environ["DT_BUILD_DIR"]), "node",
                                       "agent", "node_modules"))
    candidates.append(os.path.join(SOURCE, "build", "node", "agent", "node_modules"))
    for c in candidates:
        if os.path.isfile(os.path.join(c, "ws", "package.json")):
            return c
    return candidates[0]


NODE = shutil.which("node")
NODE_MODULES = node_modules()

# ctest counts a skipped unittest as passed, so a missing prerequisite is exit code 77.
if NODE is None:
    print("skipped: node is not installed", file=sys.stderr)
    sys.exit(77)
if not os.path.isfile(os.path.join(NODE_MODULES, "ws", "package.json")):
    print("skipped: ws is not installed in %s (run scripts/npm-deps BUILD/node/agent)"
          % NODE_MODULES, file=sys.stderr)
    sys.exit(77)
_probe = subprocess.run([NODE, "-e", "require(process.argv[1])", os.path.join(NODE_MODULES, "ws")],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
if _probe.returncode != 0:
    print("skipped: node cannot load ws from %s: %s"
          % (NODE_MODULES, _probe.stdout.decode(errors="replace")), file=sys.stderr)
    sys.exit(77)


class NodeWsInteropTest(unittest.TestCase):
    def test_node_ws(self):
        env = dict(os.environ, DT_NODE_MODULES=NODE_MODULES, NODE_PATH=NODE_MODULES)
        with Agent() as agent:
            try:
                p = subprocess.run([NODE, PROGRAM, agent.sock], env=env, cwd=agent.dir,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=40)
            except subprocess.TimeoutExpired as e:
                self.fail("ws-interop.mjs timed out:\n%s\nagent log:\n%s"
                          % ((e.stdout or b"").decode(errors="replace"), agent.logtext()[-4000:]))
            out = p.stdout.decode(errors="replace")
            sys.stderr.write(out)
            self.assertEqual(p.returncode, 0, "ws-interop.mjs failed:\n%s\nagent log:\n%s"
                             % (out, agent.logtext()[-4000:]))
            # The agent survived all of it.
            self.assertIsNone(agent.proc.poll(), "the agent exited:\n" + agent.logtext()[-4000:])


if __name__ == "__main__":
    unittest.main()
