# VMs for every server of terraform.tfvars.json, with the bpg/proxmox provider
# (endpoint and token also from PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN).
# A disk with datastore_id "auto" lands on the default datastore of its kind.

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    proxmox = {
      source  = "bpg/proxmox"
      version = ">= 0.66.0"
    }
  }
}

provider "proxmox" {
  endpoint  = var.proxmox_endpoint
  api_token = var.proxmox_api_token
}

locals {
  # hdd -> the HDD default; ssd and nvme -> the SSD default.
  default_datastore = {
    hdd  = var.proxmox_hdd_datastore
    ssd  = var.proxmox_ssd_datastore
    nvme = var.proxmox_ssd_datastore
  }
}

resource "proxmox_virtual_environment_vm" "server" {
  for_each = var.servers

  name      = each.value.name
  node_name = coalesce(each.value.node, var.proxmox_node)
  vm_id     = each.value.vm_id
  tags      = compact([each.value.role])

  clone {
    vm_id = coalesce(each.value.template_vm_id, var.vm_template_id)
  }

  cpu {
    cores = each.value.cpu
  }

  memory {
    dedicated = each.value.memory
  }

  operating_system {
    type = each.value.os_type
  }

  agent {
    enabled = true
  }

  dynamic "disk" {
    for_each = each.value.disks
    content {
      interface    = disk.value.interface
      size         = disk.value.size
      file_format  = disk.value.file_format
      datastore_id = disk.value.datastore_id == "auto" ? local.default_datastore[disk.value.disk_type] : disk.value.datastore_id
    }
  }

  dynamic "network_device" {
    for_each = each.value.network_devices
    content {
      bridge = network_device.value.bridge
    }
  }

  initialization {
    dynamic "ip_config" {
      for_each = each.value.network_devices
      content {
        ipv4 {
          address = ip_config.value.ip_address == "dhcp" ? "dhcp" : "${ip_config.value.ip_address}/${ip_config.value.subnet}"
          gateway = ip_config.value.ip_address == "dhcp" ? null : ip_config.value.gateway
        }
      }
    }
  }
}

output "servers" {
  description = "vmid and node of every server Terraform manages"
  value = { for name, vm in proxmox_virtual_environment_vm.server :
    name => { vm_id = vm.vm_id, node = vm.node_name }
  }
}
