# Appliance targets: provision a Pi, deploy to it, look after it (docs/appliance.md).
# Included by the top Makefile.
.PHONY: provision deploy fetch-logs status unit-security

provision:  ## prepare a fresh Raspberry Pi OS Lite box: make provision HOST=user@host [DRY_RUN=1]
	@bash deploy/provision.sh $(if $(DRY_RUN),--dry-run) "$(HOST)"

# The device environment's pip (make setup) fetches the box's wheels (deploy/wheelhouse.py).
deploy:  ## deploy this tree to a box, roll back if it fails: make deploy HOST=user@host [MODEL=path] (an IMPSY model is converted first)
	@bash deploy/deploy.sh deploy "$(HOST)" "$(MODEL)"

fetch-logs:  ## pull a box's interaction logs into logs/<host>/: make fetch-logs HOST=user@host
	@bash deploy/deploy.sh fetch-logs "$(HOST)"

status:  ## service state and recent log lines of a box: make status HOST=user@host
	@bash deploy/deploy.sh status "$(HOST)"

unit-security:  ## verify the systemd units and print their security exposure
	@bash deploy/deploy.sh security
