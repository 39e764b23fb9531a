/*
 * agent.h -- the daemon's entry point: load the config, open the store,
 * connect, and batch messages into the engine until SIGTERM/SIGINT.
 */
#ifndef EMBEDDB_AGENT_AGENT_H
#define EMBEDDB_AGENT_AGENT_H

#include "config.h"

/* Runs the agent with the config at path. Returns the process exit code:
 * 0 after a graceful stop, 1 when it could not start or lost data. */
int agent_run(const char *config_path);

#endif
