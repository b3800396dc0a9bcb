# superfs:local with systemd as PID 1: for running deploy/systemd's units in a
# privileged container, as tests/test_t6_deploy_systemd.py does:
#   deploy/build-images.sh --systemd
#   docker run -d --privileged --network none --cgroupns host --tmpfs /run --tmpfs /run/lock superfs-systemd:local
# then install the units and start them with 'docker exec ... systemctl'.
ARG BASE=superfs:local
FROM ${BASE}

RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd systemd-sysv; \
    rm -rf /var/lib/apt/lists/*

# A privileged container shares the host's kernel: units that would change its
# settings (sysctls, modules, binfmt handlers, the clock) or want a console are masked.
RUN systemctl mask systemd-sysctl.service systemd-modules-load.service systemd-binfmt.service \
        proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount systemd-remount-fs.service \
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
        systemd-firstboot.service systemd-journald-audit.socket getty.target console-getty.service \
        systemd-logind.service systemd-update-utmp.service systemd-update-utmp-runlevel.service

ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/sbin/init"]
CMD []
