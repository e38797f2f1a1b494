// A realistic task assignment for `render-pod` when no --task file is given.
import type { TaskAssignment } from "../oz/protocol.ts";

export const SAMPLE_ASSIGNMENT: TaskAssignment = {
  task_id: "6f1c2e0a-3b7d-4c1e-9a51-2d8e4f7b9c10",
  execution_id: "0b9d8c7e-5a41-4f3e-8d2c-7e6f5a4b3c21",
  task: {
    id: "6f1c2e0a-3b7d-4c1e-9a51-2d8e4f7b9c10",
    title: "Fix flaky integration test in payments service",
    task_definition: {
      prompt: "The test `TestRefundWebhook` fails intermittently in CI. Find the race and fix it.",
    },
    created_at: "2025-06-02T14:03:11Z",
    updated_at: "2025-06-02T14:03:12Z",
    owner: { Type: "TEAM", Id: 4821 },
    agent_config_snapshot: {
      environment_id: "env_7QmZ2kR9",
      model_id: "claude-sonnet-4",
      mcp_servers: {
        github: { command: "github-mcp-server", args: ["stdio"] },
      },
      idle_timeout_minutes: 30,
    },
  },
  docker_image: "ghcr.io/example/payments-dev:2025.06",
  sidecar_image: "us-docker.pkg.dev/warp-dev/oz/agent-sidecar:stable",
  env_vars: {
    EXAMPLE_TOKEN: "example-token-not-a-real-secret",
  },
  additional_sidecars: [],
  additional_oz_args: [],
};
