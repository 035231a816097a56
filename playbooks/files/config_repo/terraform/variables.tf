# Inputs. terraform.tfvars.json declares the servers (the inventory reads it too,
# validated by the collection's schemas/terraform.tfvars.schema.json);
# datastores.auto.tfvars.json is written by proxmox_manager.core.apply
# (datastore_default) with the default datastores.

variable "proxmox_endpoint" {
  description = "Proxmox VE API URL, e.g. https://pve1.example.com:8006/"
  type        = string
  default     = null
}

variable "proxmox_api_token" {
  description = "API token as USER@REALM!TOKENID=SECRET (prefer the PROXMOX_VE_API_TOKEN environment variable)"
  type        = string
  default     = null
  sensitive   = true
}

variable "proxmox_node" {
  description = "Node new VMs are created on unless a server names its own"
  type        = string
  # Null so that a repo with no server yet plans; set it in terraform.tfvars.json
  # ("proxmox_node": "pve1") or give each server a node.
  default = null
}

variable "vm_template_id" {
  description = "Template cloned when a server names none"
  type        = number
  default     = null
}

variable "proxmox_hdd_datastore" {
  description = "Default datastore for disks with disk_type hdd (set by datastore_default)"
  type        = string
  default     = "local-lvm"
}

variable "proxmox_ssd_datastore" {
  description = "Default datastore for disks with disk_type ssd or nvme (set by datastore_default)"
  type        = string
  default     = "local"
}

variable "servers" {
  description = "Servers by name; the map key equals name"
  type = map(object({
    name           = string
    role           = optional(string)
    vm_id          = optional(number)
    node           = optional(string)
    cpu            = optional(number, 2)
    memory         = optional(number, 2048)
    os_type        = optional(string, "l26")
    template_vm_id = optional(number)
    disks = optional(list(object({
      size         = number
      interface    = optional(string, "scsi0")
      datastore_id = optional(string, "auto")
      disk_type    = optional(string, "ssd")
      file_format  = optional(string, "raw")
    })), [])
    network_devices = optional(list(object({
      bridge     = optional(string, "vmbr0")
      ip_address = optional(string, "dhcp")
      subnet     = optional(number, 24)
      gateway    = optional(string)
    })), [])
  }))

  validation {
    condition     = alltrue([for key, server in var.servers : key == server.name])
    error_message = "Each key of servers must equal its name."
  }

  validation {
    condition = alltrue(flatten([for server in var.servers :
    [for disk in server.disks : contains(["hdd", "ssd", "nvme"], disk.disk_type)]]))
    error_message = "disk_type must be hdd, ssd or nvme."
  }
}
