#!/usr/bin/env bash
# The same deploy done by Ansible and by vakt on a 4-host `vakt lab`
# (inventory/oslo.toml): push the vakt binary, two files per host (the
# service's config or init script), start the service, or restart it only
# when something changed. Each tool runs twice on a fresh lab: first run and
# no-change run. Needs root (the lab) and PyPI (ansible-core, in a venv
# under bench/out). Prints the four wall times side by side.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "needs root (vakt lab)" >&2; exit 1; }
OUT=bench/out/ansible
mkdir -p "$OUT"
VAKT=${VAKT:-target/x86_64-unknown-linux-gnu/release/vakt}
[ -x "$VAKT" ] || cargo build --release
VAKT=$(realpath "$VAKT")
INV=$(realpath inventory/oslo.toml)
LAB=ansb
export VAKT_STATS_PASSWORD=bench-pw

if [ ! -x "$OUT/venv/bin/ansible-playbook" ]; then
  python3 -m venv "$OUT/venv"
  "$OUT/venv/bin/pip" install -q 'ansible-core>=2.15'
fi
ANSIBLE=$(realpath "$OUT/venv/bin/ansible-playbook")

# What each host gets, rendered by vakt so that both tools push the same bytes.
rm -rf "$OUT/rendered"
"$VAKT" render -i "$INV" --out "$OUT/rendered" >/dev/null

cat > "$OUT/playbook.yml" <<EOF
- hosts: all
  gather_facts: false
  vars:
    rendered: $(realpath "$OUT/rendered")
  tasks:
    - name: the vakt binary
      copy: { src: "$VAKT", dest: /usr/local/bin/vakt, mode: "0755" }
      notify: restart
    - name: the init script
      copy: { src: "{{ rendered }}/{{ inventory_hostname }}/etc/init.d/{{ svc }}", dest: "/etc/init.d/{{ svc }}", mode: "0755" }
      notify: restart
    - name: the proxy config
      when: svc == "vakt-proxy"
      copy: { src: "{{ rendered }}/{{ inventory_hostname }}/etc/vakt/proxy.toml", dest: /etc/vakt/proxy.toml, mode: "0640" }
      notify: restart
    - name: the service runs
      command: sh /etc/init.d/{{ svc }} status
      register: st
      changed_when: false
      failed_when: false
    - name: start it
      command: sh /etc/init.d/{{ svc }} start
      when: st.rc != 0
  handlers:
    - name: restart
      command: sh /etc/init.d/{{ svc }} restart
EOF

cat > "$OUT/ansible.cfg" <<EOF
[defaults]
forks = 10
host_key_checking = True
interpreter_python = /usr/bin/python3
[ssh_connection]
pipelining = True
ssh_args = -F /run/vakt-lab/$LAB/ssh_config -o ControlMaster=auto -o ControlPersist=60s
EOF

cat > "$OUT/hosts.ini" <<EOF
[all]
lb01 svc=vakt-proxy
web01 svc=vakt-demo-web
web02 svc=vakt-demo-web
db01 svc=vakt-demo-db
EOF

timed() { # prints seconds
  local s e
  s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
  echo "$e - $s" | bc
}

fresh_lab() {
  "$VAKT" lab --name $LAB down >/dev/null 2>&1 || true
  "$VAKT" lab --name $LAB up -i "$INV" >/dev/null
}

fresh_lab
a1=$(timed ip netns exec $LAB-ctl env ANSIBLE_CONFIG="$(realpath $OUT/ansible.cfg)" "$ANSIBLE" -i "$OUT/hosts.ini" "$OUT/playbook.yml")
a2=$(timed ip netns exec $LAB-ctl env ANSIBLE_CONFIG="$(realpath $OUT/ansible.cfg)" "$ANSIBLE" -i "$OUT/hosts.ini" "$OUT/playbook.yml")
fresh_lab
v1=$(timed "$VAKT" lab --name $LAB exec ctl -- "$VAKT" up -i "$INV")
v2=$(timed "$VAKT" lab --name $LAB exec ctl -- "$VAKT" up -i "$INV")
"$VAKT" lab --name $LAB down >/dev/null

printf '| 4-host lab | first run | no-change run |\n|---|---:|---:|\n'
printf '| Ansible (forks=10, pipelining, ControlPersist) | %.2f s | %.2f s |\n' "$a1" "$a2"
printf '| vakt up | %.2f s | %.2f s |\n' "$v1" "$v2"
