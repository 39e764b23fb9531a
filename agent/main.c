/*
 * main.c -- embeddb-agent's command line: -c PATH, --check-config, --help.
 */
#include "agent.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: embeddb-agent [--check-config] [-c CONFIG | CONFIG]\n"
    "\n"
    "Subscribes to MQTT sensor topics, stores every decoded tensor in an\n"
    "EmbedDb TensorStore, rotates what it stored into snapshots and uploads\n"
    "them over TLS (see conf/agent.yaml for every option).\n"
    "\n"
    "  -c CONFIG       configuration file (default " AGENT_DEFAULT_CONFIG ");\n"
    "                  CONFIG alone names it too\n"
    "  --check-config  validate the configuration and exit (0 valid, 1 not)\n"
    "  -h, --help      this text\n"
    "\n"
    "Signals: SIGTERM/SIGINT stop after committing and flushing what arrived;\n"
    "SIGHUP reloads subscriptions, batch limits and the log level (an invalid\n"
    "file is refused and the running configuration kept); SIGUSR1 seals a\n"
    "snapshot now (as `embeddb snapshot DIR` does).\n"
    "Exit codes: 0 stopped cleanly or config valid, 1 error, 2 usage.\n";

int main(int argc, char **argv)
{
    const char *config = AGENT_DEFAULT_CONFIG;
    int check = 0, named = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc && !named) {
            config = argv[++i];
            named = 1;
        } else if (argv[i][0] != '-' && !named) {
            config = argv[i];
            named = 1;
        } else if (!strcmp(argv[i], "--check-config")) {
            check = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "embeddb-agent: unexpected argument '%s'\n\n%s", argv[i], usage);
            return 2;
        }
    }
    if (check) {
        agent_config cfg;
        char err[1024];
        int rc = agent_config_load(config, &cfg, err, sizeof(err));
        if (rc)
            fprintf(stderr, "%s\n", err);
        else
            printf("%s: ok (%zu subscription(s), store %s, device_id %s)\n", config,
                   cfg.mqtt.n_subs, cfg.storage.dir, cfg.device_id);
        agent_config_free(&cfg);
        return rc ? 1 : 0;
    }
    return agent_run(config);
}
