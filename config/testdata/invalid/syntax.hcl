app "web" {
  command = ["./server"
} # ERROR: Missing item separator
