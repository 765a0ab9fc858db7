# Checks the developer VM definition (vagrant/Vagrantfile) without booting it.
# Include from the top Makefile:
#
#   include vagrant/vagrant.mk
#
#   make vagrant-validate
#
# Vagrant only validates the settings of a provider it has, so the libvirt
# plugin is installed with it (Debian 12: vagrant, vagrant-libvirt); no libvirt
# daemon is needed. VirtualBox is not in Debian, so its block is not checked here.

VAGRANT_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: vagrant-validate
vagrant-validate:
	@if ! command -v vagrant >/dev/null || ! dpkg-query -W -f='$${Status}' vagrant-libvirt 2>/dev/null | grep -q 'ok installed'; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "vagrant-validate: install vagrant and vagrant-libvirt (apt-get install vagrant vagrant-libvirt) or run as root" >&2; \
			exit 1; \
		fi; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			-o DPkg::Lock::Timeout=300 vagrant vagrant-libvirt; \
	fi
	cd $(VAGRANT_DIR) && VAGRANT_DEFAULT_PROVIDER=$${VAGRANT_DEFAULT_PROVIDER:-libvirt} vagrant validate
