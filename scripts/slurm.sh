#!/usr/bin/env bash
# A real single-node Slurm on localhost, for the Slurm executor's tests (Debian 12,
# slurm-wlm 22.05). Needs root; writes only under $SD.
#
#   scripts/slurm.sh install     apt-get install slurm-wlm munge (once per machine)
#   scripts/slurm.sh start       configure and start munged, slurmctld, slurmd; wait until idle
#   scripts/slurm.sh stop        stop the daemons it started, by their pid files
#   scripts/slurm.sh env         print the exports the tests need (SLURM_CONF)
#
# The node offers 2 GPUs without hardware: character devices aliasing /dev/null, so that
# --gres=gpu:N is schedulable and Slurm sets CUDA_VISIBLE_DEVICES in the job.
# ACCOUNTING=1 also starts MariaDB and slurmdbd, so that sacct works (+~7 s).
set -euo pipefail
SD=${SD:-/tmp/onebox-slurm}
ACCOUNTING=${ACCOUNTING:-0}
export SLURM_CONF=$SD/etc/slurm.conf

install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
  if [ "$ACCOUNTING" = 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmdbd mariadb-server >/dev/null
  fi
}

start() {
  command -v slurmctld >/dev/null || install
  mkdir -p "$SD"/{etc,state,spool,log}
  for i in 0 1; do [ -e "$SD/fakegpu$i" ] || mknod "$SD/fakegpu$i" c 1 3; done
  local host; host=$(hostname)
  cat > "$SLURM_CONF" <<CONF
ClusterName=onebox
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
ReturnToService=2
StateSaveLocation=$SD/state
SlurmdSpoolDir=$SD/spool
SlurmctldPidFile=$SD/slurmctld.pid
SlurmdPidFile=$SD/slurmd.pid
SlurmctldLogFile=$SD/log/slurmctld.log
SlurmdLogFile=$SD/log/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=$SD/log/jobcomp.log
GresTypes=gpu
NodeName=localhost NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=4000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  echo "NodeName=localhost Name=gpu File=$SD/fakegpu[0-1]" > "$SD/etc/gres.conf"
  mkdir -p /run/munge && chown munge:munge /run/munge
  if ! { [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
    su -s /bin/sh munge -c /usr/sbin/munged
  fi
  if [ "$ACCOUNTING" = 1 ]; then
    cat >> "$SLURM_CONF" <<CONF
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
CONF
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --skip-name-resolve > "$SD/log/mariadb.log" 2>&1 &
    echo $! > "$SD/mariadb.pid"
    until mariadb -e 'select 1' >/dev/null 2>&1; do sleep 0.2; done
    mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw'; CREATE DATABASE IF NOT EXISTS slurm_acct_db; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    cat > "$SD/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
PidFile=$SD/slurmdbd.pid
LogFile=$SD/log/slurmdbd.log
CONF
    chmod 600 "$SD/etc/slurmdbd.conf"
    slurmdbd
    until sacctmgr -n show cluster >/dev/null 2>&1; do sleep 0.2; done
    sacctmgr -i add cluster onebox >/dev/null || true
  fi
  slurmctld -i
  slurmd
  local waited=0
  until sinfo -h -o %T | grep -qx idle; do
    sleep 0.2; waited=$((waited + 1))
    if [ $waited -gt 300 ]; then echo "slurm.sh: the node did not become idle; see $SD/log" >&2; exit 1; fi
  done
  echo "slurm.sh: Slurm is up; export SLURM_CONF=$SLURM_CONF"
}

stop() {
  for f in slurmd slurmctld slurmdbd mariadb; do
    if [ -f "$SD/$f.pid" ]; then
      p=$(cat "$SD/$f.pid"); kill "$p" 2>/dev/null || true
      while kill -0 "$p" 2>/dev/null; do sleep 0.2; done
      rm -f "$SD/$f.pid"
    fi
  done
  if [ -f /run/munge/munged.pid ]; then
    p=$(cat /run/munge/munged.pid); kill "$p" 2>/dev/null || true
    while kill -0 "$p" 2>/dev/null; do sleep 0.2; done
  fi
}

print_env() {
  echo "export SLURM_CONF=$SLURM_CONF"
}

case "${1:-}" in
  install|start|stop) "$1" ;;
  env) print_env ;;
  *) echo "usage: scripts/slurm.sh install|start|stop|env" >&2; exit 2 ;;
esac
