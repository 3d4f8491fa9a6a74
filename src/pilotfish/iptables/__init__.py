"""pilotfish.iptables"""
