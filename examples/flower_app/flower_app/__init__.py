"""flower-app: Flower's app-pytorch template on offline MNIST, with fl-privacy's capture wired in."""
